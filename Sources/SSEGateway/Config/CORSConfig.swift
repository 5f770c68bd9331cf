/// CORS for browsers on other origins. Denies by default (empty `allowOrigins`).
public struct CORSConfig: Sendable, Equatable {
    /// Exact origins, subdomain wildcards (`https://*.example.com`), or `*`; parsed at load time.
    public var allowOrigins: [OriginPattern] = []
    /// Echo the origin and send `Access-Control-Allow-Credentials: true`; never together with `*`.
    public var allowCredentials: Bool = false

    public init() {}

    /// True when `*` is listed: the answer is `Access-Control-Allow-Origin: *` whatever the `Origin`.
    var allowsAnyOrigin: Bool { self.allowOrigins.contains(.any) }

    /// Whether a request's `Origin` is allowed.
    func allows(origin: String) -> Bool {
        self.allowOrigins.contains { $0.matches(origin) }
    }
}
