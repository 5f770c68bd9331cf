import AsyncHTTPClient
import NIOCore

extension ForwardAuthorizer {
    /// An `HTTPClient` configuration fit for forward auth (and other short access-control calls):
    ///
    /// - `connections` pooled keep-alive connections per host: at least the `max_concurrent` of the
    ///   authorizers that share the client and the backend. AsyncHTTPClient's default of 8 would quietly cap
    ///   the calls in flight at 8 and queue the rest inside the pool, against their `timeout`.
    /// - No retried connects: a backend that is down answers `503` at once instead of holding a call slot
    ///   for the whole `timeout`.
    /// - No redirects: a redirect to a login page is not an allow (the authorizer refuses one anyway).
    /// - Connect timeout `connectTimeout` (keep it at or below the forward `timeout`).
    public static func clientConfiguration(
        connections: Int,
        connectTimeout: TimeAmount = .seconds(2)
    ) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: max(connections, 1)
        )
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.redirectConfiguration = .disallow
        configuration.timeout.connect = connectTimeout
        configuration.decompression = .disabled
        return configuration
    }
}
