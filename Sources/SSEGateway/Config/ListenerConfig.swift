/// One downstream listener. Cleartext serves HTTP/1.1 (and h2c once HTTP/2 lands); `tls` adds termination.
public struct ListenerConfig: Sendable, Equatable {
    public var address: HostPort
    public var tls: ServerTLSConfig?
    /// `delivery: poll` answers every feed request on this listener in poll mode; nil: as the feed says.
    public var delivery: DeliveryMode?

    public init(address: HostPort, tls: ServerTLSConfig? = nil, delivery: DeliveryMode? = nil) {
        self.address = address
        self.tls = tls
        self.delivery = delivery
    }
}
