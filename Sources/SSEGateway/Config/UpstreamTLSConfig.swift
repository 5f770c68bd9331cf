/// TLS towards an https upstream. Paths are resolved relative to the config file's folder.
public struct UpstreamTLSConfig: Sendable, Equatable {
    /// PEM bundle of trusted CAs; nil means the system trust store.
    public var ca: String?
    /// Client certificate chain (PEM) for mTLS.
    public var certificate: String?
    public var privateKey: String?
    /// `false` only when written explicitly; logged as a warning at start-up.
    public var verify: Bool = true

    public init(ca: String? = nil, certificate: String? = nil, privateKey: String? = nil, verify: Bool = true) {
        self.ca = ca
        self.certificate = certificate
        self.privateKey = privateKey
        self.verify = verify
    }
}
