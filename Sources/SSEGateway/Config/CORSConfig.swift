/// CORS for browsers on other origins. Denies by default (empty `allowOrigins`).
public struct CORSConfig: Sendable, Equatable {
    /// Exact origins, or `"*"`.
    public var allowOrigins: [String] = []
    public var allowCredentials: Bool = false

    public init() {}
}
