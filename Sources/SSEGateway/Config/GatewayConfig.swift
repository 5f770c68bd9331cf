import NIOCore

/// The whole gateway configuration, as read from the YAML file (SPEC §2).
///
/// Plain values with the documented defaults; `ConfigLoader` builds it and validates it once,
/// so the rest of the gateway never sees an invalid value.
public struct GatewayConfig: Sendable, Equatable {
    public var listen: [ListenerConfig] = [ListenerConfig(address: HostPort(host: "0.0.0.0", port: 8080))]
    public var admin: AdminConfig? = AdminConfig(address: HostPort(host: "127.0.0.1", port: 9090))
    public var shutdownTimeout: TimeAmount = .seconds(10)
    public var limits = LimitsConfig()
    public var logLevel: String = "info"
    public var feeds: [FeedConfig] = []

    public init() {}
}

/// A `host:port` pair as written in the config (`0.0.0.0:8080`, `"[::]:8443"`, `localhost:80`).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }
}

/// One downstream listener. Cleartext serves HTTP/1.1 (and h2c once HTTP/2 lands); `tls` adds termination.
public struct ListenerConfig: Sendable, Equatable {
    public var address: HostPort
    public var tls: ServerTLSConfig?

    public init(address: HostPort, tls: ServerTLSConfig? = nil) {
        self.address = address
        self.tls = tls
    }
}

/// TLS termination settings of a listener. Paths are resolved relative to the config file's folder.
public struct ServerTLSConfig: Sendable, Equatable {
    public var certificate: String
    public var privateKey: String
    /// "1.2" or "1.3".
    public var minVersion: String = "1.2"

    public init(certificate: String, privateKey: String, minVersion: String = "1.2") {
        self.certificate = certificate
        self.privateKey = privateKey
        self.minVersion = minVersion
    }
}

/// The admin listener: `/metrics`, `/healthz`, `/readyz`, `/api/feeds`.
public struct AdminConfig: Sendable, Equatable {
    public var address: HostPort

    public init(address: HostPort) {
        self.address = address
    }
}

/// Process-wide limits.
public struct LimitsConfig: Sendable, Equatable {
    /// Over it a new client gets `503` with `Retry-After`.
    public var maxClients: Int = 100_000
    /// A client that has not sent a whole request head within this time is disconnected.
    public var headerTimeout: TimeAmount = .seconds(10)
    /// A request head larger than this gets `431` and the connection closes.
    public var maxHeaderBytes: Int = 16 * 1024
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`: SSE subscriptions one connection may hold.
    public var maxStreamsPerConnection: Int = 128
    /// HTTP/2 streams that clients may reset right after opening them (within a second or two), per
    /// second, summed over all connections of one listener (the rapid reset attack spreads them over
    /// many connections). Over it the connection that reset one gets GOAWAY and is closed.
    public var prematureResetsPerSecond: Int = 1000
    /// Template instances (`/rooms/{room}` values) the gateway opens per second, over all templates;
    /// over it a request for a new value gets `503` with a jittered `Retry-After`. 0: no limit.
    public var maxNewFeedsPerSecond: Int = 100
    /// The same per client address, so one client cannot spend the gateway's allowance. 0 (the default):
    /// no limit. Off by default because the address is the TCP peer's: behind a load balancer every client
    /// has the balancer's address, and one abuser would spend the allowance of all (until PROXY protocol
    /// and trusted X-Forwarded-For give the real address).
    public var maxNewFeedsPerAddressPerSecond: Int = 0

    public init() {}

    var newFeedRates: NewFeedLimiter.Rates {
        NewFeedLimiter.Rates(
            perSecond: self.maxNewFeedsPerSecond,
            perAddressPerSecond: self.maxNewFeedsPerAddressPerSecond
        )
    }
}

/// The per-feed settings that `defaults:` sets for every feed and that a feed may override.
public struct FeedSettings: Sendable, Equatable {
    /// Sent as `retry:` at the start of each stream.
    public var retry: TimeAmount = .seconds(3)
    /// A client that has had no bytes for this long gets a comment line.
    public var keepalive: TimeAmount = .seconds(15)
    /// When true a 2 KiB comment is sent first, for old polyfills and buffering proxies.
    public var padding: Bool = false
    /// gzip when the client accepts it (served once streaming compression lands).
    public var compression: Bool = true
    public var replay = ReplayConfig()
    public var client = ClientLimitsConfig()
    public var upstream = UpstreamSettings()
    public var cors = CORSConfig()

    public init() {}
}

/// Bounds of a feed's replay ring; the oldest event goes when any bound is exceeded.
public struct ReplayConfig: Sendable, Equatable {
    public var maxEvents: Int = 1000
    public var maxBytes: Int = 8 * 1024 * 1024
    public var maxAge: TimeAmount = .minutes(10)
    /// When true a resume from an id the buffer no longer holds also sends `event: gap`.
    public var gapEvent: Bool = false

    public init() {}
}

/// Per-client backpressure bounds (SPEC §3 "slow consumers").
public struct ClientLimitsConfig: Sendable, Equatable {
    /// Bytes a client may fall behind before it is evicted.
    public var maxQueue: Int = 1024 * 1024
    /// Age of its oldest unsent event before it is evicted.
    public var maxLag: TimeAmount = .seconds(30)

    public init() {}
}

/// Upstream connection behaviour shared through `defaults.upstream`.
public struct UpstreamSettings: Sendable, Equatable {
    public var connectTimeout: TimeAmount = .seconds(5)
    /// No byte (comments included) for this long: reconnect.
    public var idleTimeout: TimeAmount = .seconds(45)
    public var backoffInitial: TimeAmount = .milliseconds(250)
    public var backoffMax: TimeAmount = .seconds(30)
    /// A stream must stay up this long before the backoff starts over at `backoffInitial`.
    public var backoffResetAfter: TimeAmount = .seconds(10)
    /// A longer upstream line or event drops the connection, is counted, and reconnects.
    public var maxEventSize: Int = 1024 * 1024
    /// Extra request headers, in the order written (values already `${ENV}`-expanded).
    public var headers: [HeaderField] = []
    public var tls: UpstreamTLSConfig?

    public init() {}
}

/// One HTTP header as written in the config.
public struct HeaderField: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// TLS towards an https upstream. Paths are resolved relative to the config file's folder.
public struct UpstreamTLSConfig: Sendable, Equatable {
    /// PEM bundle of trusted CAs; nil means the system trust store.
    public var ca: String?
    /// Client certificate chain (PEM) for mTLS.
    public var certificate: String?
    public var privateKey: String?
    /// `false` only when written explicitly; logged as a warning at start-up.
    public var verify: Bool = true

    public init(ca: String? = nil, certificate: String? = nil, privateKey: String? = nil, verify: Bool = true) {
        self.ca = ca
        self.certificate = certificate
        self.privateKey = privateKey
        self.verify = verify
    }
}

/// CORS for browsers on other origins. Denies by default (empty `allowOrigins`).
public struct CORSConfig: Sendable, Equatable {
    /// Exact origins, or `"*"`.
    public var allowOrigins: [String] = []
    public var allowCredentials: Bool = false

    public init() {}
}

/// When a feed holds its upstream connection.
public enum ConnectMode: String, Sendable, Equatable {
    /// From start-up to shutdown (templates: from the first subscribe on).
    case always
    /// Only while clients are connected, plus `linger` after the last one leaves.
    case onDemand = "on_demand"
}

/// Who names the events' ids.
public enum IDMode: String, Sendable, Equatable {
    /// Pass the upstream's ids through unchanged.
    case upstream
    /// Assign an id to each event that arrives without one.
    case gateway
}

/// One `feeds:` entry, with the defaults already applied.
public struct FeedConfig: Sendable, Equatable {
    /// Defaults to the path as written.
    public var name: String
    /// Downstream path, possibly a template such as `/rooms/{room}`.
    public var path: PathTemplate
    /// Upstream URL; a template feed's URL may use the same `{name}` placeholders as the path.
    public var upstreamURL: UpstreamURL
    public var connect: ConnectMode = .always
    public var linger: TimeAmount = .seconds(30)
    public var ids: IDMode = .upstream
    /// Templates only: cap on distinct values (over it: 503).
    public var maxFeeds: Int = 10_000
    public var settings: FeedSettings

    public init(name: String, path: PathTemplate, upstreamURL: UpstreamURL, settings: FeedSettings = FeedSettings()) {
        self.name = name
        self.path = path
        self.upstreamURL = upstreamURL
        self.settings = settings
    }
}
