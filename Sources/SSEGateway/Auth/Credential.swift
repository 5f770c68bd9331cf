/// A bearer token a request brought, and where it was found (for metrics and for deciding what to strip
/// before a request goes upstream).
public struct Credential: Sendable, Hashable {
    public enum Source: String, Sendable, Hashable {
        /// `Authorization: Bearer <token>`.
        case authorizationHeader = "header"
        /// The configured cookie.
        case cookie
        /// The `access_token` query parameter (only when `allow_query_token` is on).
        case query
    }

    /// The token as sent; may be empty (`Bearer ` with nothing after it), which the verifier refuses as malformed.
    public var token: String
    public var source: Source

    public init(token: String, source: Source) {
        self.token = token
        self.source = source
    }
}
