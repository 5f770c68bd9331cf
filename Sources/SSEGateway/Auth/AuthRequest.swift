import NIOHTTP1

/// What the gate shows an authorizer about one request: its headers (credentials are found there or in the
/// query), the concrete path asked for, and the client's address.
public struct AuthRequest: Sendable {
    public var headers: HTTPHeaders
    /// The request path without the query, e.g. `/rooms/42`.
    public var path: String
    /// The query without `?`, possibly empty.
    public var query: String
    /// The client's IP address as text, when known.
    public var clientAddress: String?

    public init(headers: HTTPHeaders, path: String, query: String = "", clientAddress: String? = nil) {
        self.headers = headers
        self.path = path
        self.query = query
        self.clientAddress = clientAddress
    }
}
