/// What a bench run does: the command line of `ssegate bench`, also set directly by tests.
public struct BenchOptions: Sendable {
    /// The SSE URL, http or https.
    public var url: String
    /// The same stream through other front ends (a second load balancer, say): client i uses URL number
    /// i mod (1 + count), `url` first. The report names `url`.
    public var moreURLs: [String] = []
    public var clients = 100
    /// Seconds to measure once every client has its response head (or the head wait is over).
    public var duration: Double = 10
    /// Connections being opened at once while ramping up.
    public var connectConcurrency = 256
    /// Spread connections over source addresses 127.0.0.1 ... 127.0.0.N.
    public var sourceAddresses = 1
    /// Event loop threads of the load tool.
    public var threads = 1
    /// Events per second the origin sends; the report then shows the expected deliveries.
    public var expectedRate: Double?
    /// Ask for gzip and inflate what arrives.
    public var gzip = false
    /// HTTP/2: h2c with prior knowledge for http, ALPN `h2` for https.
    public var http2 = false
    /// HTTP/2 streams (clients) per connection.
    public var streamsPerConnection = 100
    /// PEM file of the CA to trust for https (else the system's roots).
    public var caCertificateFile: String?
    /// Skip certificate verification.
    public var insecure = false
    /// Seconds to wait for the response heads after the ramp before measuring anyway.
    public var headWait: Double = 10
    /// Seconds a connection may take to connect (TCP), and then again to finish its TLS handshake.
    public var connectTimeout: Double = 10
    /// Sent on every request, after the bench's own (`Accept`, `Cache-Control`, `Accept-Encoding`).
    public var headers: [BenchRequestHeader] = []
    /// Poll clients (`--poll`, `?transport=poll` added to the URL) and multi-feed streams (`--multi`).
    public var mode = BenchClientMode()

    public init(url: String) {
        self.url = url
    }

    /// Every URL parsed (`url` first), or a usage error naming the bad option.
    func validatedTargets() throws -> [BenchURL] {
        let first = try self.validated()
        return try [first] + self.moreURLs.map { try self.validated(url: $0) }
    }

    /// The parsed URL (with `transport=poll` for poll clients), or a usage error naming the bad option.
    func validated(url: String? = nil) throws -> BenchURL {
        var target = try BenchURL(parsing: url ?? self.url)
        if self.mode.poll {
            guard !self.http2 else {
                throw BenchError.usage("--poll is HTTP/1.1 only (keep-alive polls); leave out --http2")
            }
            target.addPollTransport()
        }
        if self.mode.reconnect {
            guard !self.http2, !self.mode.poll, !self.mode.multi else {
                throw BenchError.usage("--reconnect is for HTTP/1.1 streams: leave out --http2, --poll and --multi")
            }
        }
        guard self.clients > 0, self.duration > 0, self.headWait >= 0, self.connectTimeout > 0 else {
            throw BenchError.usage("--clients and --duration must be positive")
        }
        guard (1...254).contains(self.sourceAddresses) else {
            throw BenchError.usage("--source-addresses must be 1...254")
        }
        guard self.streamsPerConnection > 0, self.connectConcurrency > 0 else {
            throw BenchError.usage("--streams-per-connection and --connect-concurrency must be positive")
        }
        return target
    }

    /// Feeds each client reads: the URL's `feed=` parameters with `--multi`, else 1.
    var feedsPerClient: Int {
        guard self.mode.multi else { return 1 }
        let query = self.url.drop { $0 != "?" }.dropFirst()
        return max(1, query.split(separator: "&").filter { $0.hasPrefix("feed=") }.count)
    }

    /// Clients per connection: one for HTTP/1.1, up to `streamsPerConnection` for HTTP/2.
    var clientsPerConnection: Int { self.http2 ? self.streamsPerConnection : 1 }
}
