/// One downstream listener. Cleartext serves HTTP/1.1 and h2c; `tls` adds termination.
public struct ListenerConfig: Sendable, Equatable {
    public var address: HostPort
    public var tls: ServerTLSConfig?
    /// `delivery: poll` answers every feed request on this listener in poll mode; nil: as the feed says.
    public var delivery: DeliveryMode?
    /// `proxy_protocol: true`: every connection starts with a PROXY protocol header (v1 or v2, as HAProxy's
    /// `send-proxy`/`send-proxy-v2` write it) whose source is the client's address; a connection without
    /// a valid one is closed.
    public var proxyProtocol: Bool

    public init(
        address: HostPort,
        tls: ServerTLSConfig? = nil,
        delivery: DeliveryMode? = nil,
        proxyProtocol: Bool = false
    ) {
        self.address = address
        self.tls = tls
        self.delivery = delivery
        self.proxyProtocol = proxyProtocol
    }
}
