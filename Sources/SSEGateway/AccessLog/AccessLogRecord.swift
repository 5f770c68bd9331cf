/// One line of the access log: what a request was and how its exchange ended, collected on the
/// connection's event loop when it ends. A plain value; `jsonLine` encodes it by hand (no `JSONEncoder`).
///
/// The request target keeps its path and its query's shape, but the value of any parameter that can carry
/// a credential is written as `REDACTED` (`redactedTarget`); no header value is ever recorded, so neither
/// an `Authorization` header nor a cookie can reach the log.
public struct AccessLogRecord: Sendable, Equatable {
    /// What served the request.
    public enum Kind: String, Sendable {
        /// A one-feed SSE stream.
        case stream
        /// A poll (`?transport=poll`, `delivery: poll`): one finite response.
        case poll
        /// Several feeds on one stream (`multi.path`).
        case multi
        /// Anything else the router answered itself: 404, 405, 400, OPTIONS, HEAD.
        case request
    }

    /// When the exchange ended, in milliseconds since 1970 (UTC).
    public var endedAtMilliseconds: Int64
    /// The client's address as the gateway sees it (`StreamRequest.clientAddress`: the peer, or the address a
    /// trusted proxy named); nil when unknown.
    public var client: String?
    /// nil when the request head could not be parsed (a 400 or 431 before routing).
    public var method: String?
    /// The request target as sent (path and query); written redacted.
    public var target: String?
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`.
    public var httpVersion: String
    /// Whether the connection is TLS (HTTP/2 over TLS is h2, without it h2c).
    public var tls: Bool
    public var kind: Kind
    /// The feed's path template (`/rooms/{room}`) and the instance's path (`/rooms/lobby`).
    public var feed: String?
    public var instance: String?
    /// The instance paths of a multi-feed stream, in request order.
    public var feeds: [String]?
    public var status: Int
    /// The `Last-Event-ID` (or its query form) the client resumed from.
    public var resumeID: String?
    /// The resume id was older than the replay buffer: the client was told about a gap.
    public var gap: Bool
    /// Events handed to the client (the replay included).
    public var events: Int
    /// Body bytes handed to the connection (after compression; chunk framing included).
    public var bytes: Int
    public var durationMilliseconds: Int64
    public var end: AccessLogEnd
    /// For a refusal: which limit or check (`max_clients`, `not_found`, a token refusal such as `expired`).
    public var reason: String?

    public init(
        endedAtMilliseconds: Int64,
        client: String?,
        method: String?,
        target: String?,
        httpVersion: String,
        tls: Bool,
        kind: Kind,
        status: Int,
        end: AccessLogEnd
    ) {
        self.endedAtMilliseconds = endedAtMilliseconds
        self.client = client
        self.method = method
        self.target = target
        self.httpVersion = httpVersion
        self.tls = tls
        self.kind = kind
        self.status = status
        self.gap = false
        self.events = 0
        self.bytes = 0
        self.durationMilliseconds = 0
        self.end = end
    }

    /// The record as one JSON object and a newline. Field order is fixed; absent values are `null`, except
    /// `feeds` (only on multi-feed streams).
    public var jsonLine: String {
        var line = "{\"time\":\""
        line += AccessLogTime.rfc3339(milliseconds: self.endedAtMilliseconds)
        line += "\",\"client\":"
        Self.append(self.client, to: &line)
        line += ",\"method\":"
        Self.append(self.method, to: &line)
        line += ",\"path\":"
        Self.append(self.target.map(Self.redactedTarget), to: &line)
        line += ",\"protocol\":"
        line += JSONText.string(self.httpVersion)
        line += self.tls ? ",\"tls\":true" : ",\"tls\":false"
        line += ",\"kind\":\""
        line += self.kind.rawValue
        line += "\",\"feed\":"
        Self.append(self.feed, to: &line)
        line += ",\"instance\":"
        Self.append(self.instance, to: &line)
        if let feeds = self.feeds {
            line += ",\"feeds\":["
            line += feeds.map(JSONText.string).joined(separator: ",")
            line += "]"
        }
        line += ",\"status\":"
        line += String(self.status)
        line += ",\"resume_id\":"
        Self.append(self.resumeID, to: &line)
        line += self.gap ? ",\"gap\":true" : ",\"gap\":false"
        line += ",\"events\":"
        line += String(self.events)
        line += ",\"bytes\":"
        line += String(self.bytes)
        line += ",\"duration_ms\":"
        line += String(self.durationMilliseconds)
        line += ",\"end\":\""
        line += self.end.rawValue
        line += "\",\"reason\":"
        Self.append(self.reason, to: &line)
        line += "}\n"
        return line
    }

    private static func append(_ text: String?, to line: inout String) {
        if let text {
            line += JSONText.string(text)
        } else {
            line += "null"
        }
    }

    /// Query parameters whose values are never logged (names compared lowercased and percent-decoded):
    /// `access_token` (the query dialect of `auth:`), and the names other hubs and signed URLs use for a
    /// credential, in case a client sends one where the gateway does not look for it.
    static let credentialParameters: Set<String> = [
        CredentialExtractor.queryParameter, "token", "jwt", "auth", "authorization", "api_key", "apikey", "key",
        "secret", "password", "sig", "signature",
    ]

    /// `target` with the value of every credential parameter replaced by `REDACTED` (QueryRedaction's
    /// one-pair-at-a-time rewrite; the path and the other pairs stay as sent).
    static func redactedTarget(_ target: String) -> String {
        QueryRedaction.redacting(target) { pair, name, value in
            guard value != nil else { return String(pair) }
            // Compared as `CredentialExtractor` reads names: an encoded name cannot carry a token past this.
            let bytes = PercentDecoding.bytes(name, plusAsSpace: true)
            let decoded = bytes.map { String(decoding: $0, as: UTF8.self) } ?? String(name)
            guard Self.credentialParameters.contains(decoded.lowercased()) else { return String(pair) }
            return name + "=REDACTED"
        }
    }
}
