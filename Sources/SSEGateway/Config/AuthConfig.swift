import NIOCore

/// A feed's `auth:` (or `defaults.auth:`), key by key: the mode and the settings of every mode, so that a feed
/// may switch mode without restating keys `defaults:` set.
public struct AuthConfig: Sendable, Equatable {
    public var mode: AuthMode = .none
    public var jwt = JWTSettings()
    public var expiry = AuthExpiryConfig()
    public var forward = ForwardAuthConfig()

    public init() {}

    /// True when a request to the feed may need a credential (CORS preflight then allows `Authorization`).
    public var acceptsCredentials: Bool { self.mode != .none }

    /// True when both let in exactly the same requests: same mode, keys and claims, same auth backend. Timers
    /// (`expiry`, forward `ttl`, `timeout`, `recheck`, bounds) do not change who is admitted, so a reload that
    /// only tunes them does not send connected clients back through the gate.
    public func admitsTheSame(as other: AuthConfig) -> Bool {
        self.mode == other.mode && self.jwt == other.jwt && self.forward.url == other.forward.url
            && self.forward.grantHeader == other.forward.grantHeader
    }
}

/// What happens when the credential a stream was admitted with runs out (`auth.expiry`).
public struct AuthExpiryConfig: Sendable, Equatable {
    /// `event: auth-expiring` goes out this long before `exp`, so a page can fetch a new token.
    public var warnBefore: TimeAmount = .seconds(30)
    /// When false, a stream outlives its token's `exp` (only new connections are checked).
    public var enforce: Bool = true

    public init() {}
}

/// `auth.forward`: the backend the gateway asks, as nginx `auth_request` does.
public struct ForwardAuthConfig: Sendable, Equatable {
    /// Asked with the client's `Cookie`, `Authorization`, the requested path and the client's address.
    /// Required when the mode is `forward`.
    public var url: UpstreamURL?
    /// How long an answer is reused for the same credential and path.
    public var ttl: TimeAmount = .seconds(30)
    /// Bound on cached answers; the oldest go first.
    public var maxEntries: Int = 100_000
    /// Calls in flight to the backend at once; further misses wait up to `queueTimeout`, then get 503.
    public var maxConcurrent: Int = 64
    /// How long a miss waits for a free call slot before it is answered 503.
    public var queueTimeout: TimeAmount = .seconds(1)
    /// A call that takes longer fails (503; never allow).
    public var timeout: TimeAmount = .seconds(2)
    /// Streams are asked about again this often; a 401/403 then ends them with `auth-expired`.
    public var recheck: TimeAmount = .minutes(5)
    /// A 2xx answer carrying this header (comma-separated paths or patterns) narrows the feeds allowed.
    public var grantHeader: String = "X-Ssegate-Feeds"

    public init() {}
}
