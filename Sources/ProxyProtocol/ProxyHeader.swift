import NIOCore

/// What a load balancer said about a connection in its PROXY protocol header (v1 text or v2 binary,
/// https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt): who the client is, when it says.
public struct ProxyHeader: Sendable, Equatable {
    /// The protocol version the header was written in (1: text, 2: binary).
    public var version: Int
    /// The client's address and port as the load balancer saw them. Nil when the header carries none:
    /// v1 `UNKNOWN`, v2 `LOCAL` (the balancer's own health check), or a v2 family other than IPv4/IPv6.
    /// The connection's peer address is then the one to use.
    public var source: SocketAddress?
    /// The address the client connected to on the load balancer, when `source` is set.
    public var destination: SocketAddress?
    /// Bytes the header took at the start of the stream; what follows is the client's own data.
    public var length: Int

    public init(version: Int, source: SocketAddress?, destination: SocketAddress?, length: Int) {
        self.version = version
        self.source = source
        self.destination = destination
        self.length = length
    }
}
