/// The admin listener: `/metrics`, `/healthz`, `/readyz`, `/api/feeds`.
public struct AdminConfig: Sendable, Equatable {
    public var address: HostPort

    public init(address: HostPort) {
        self.address = address
    }
}
