import NIOCore

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
