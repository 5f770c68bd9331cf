/// The admin listener: `/metrics`, `/healthz`, `/readyz`, `/api/feeds`, the status page.
public struct AdminConfig: Sendable, Equatable {
    public var address: HostPort
    /// What every admin path but `/healthz` and `/readyz` demands (`admin.token_file`); nil: open, for a
    /// listener on loopback or a private network.
    public var token: AdminToken?

    public init(address: HostPort, token: AdminToken? = nil) {
        self.address = address
        self.token = token
    }
}
