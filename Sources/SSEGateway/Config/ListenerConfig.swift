/// One downstream listener. Cleartext serves HTTP/1.1 (and h2c once HTTP/2 lands); `tls` adds termination.
public struct ListenerConfig: Sendable, Equatable {
    public var address: HostPort
    public var tls: ServerTLSConfig?

    public init(address: HostPort, tls: ServerTLSConfig? = nil) {
        self.address = address
        self.tls = tls
    }
}
