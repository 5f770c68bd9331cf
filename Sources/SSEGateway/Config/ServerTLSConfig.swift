/// TLS termination settings of a listener. Paths are resolved relative to the config file's folder.
public struct ServerTLSConfig: Sendable, Equatable {
    public var certificate: String
    public var privateKey: String
    /// "1.2" or "1.3".
    public var minVersion: String = "1.2"

    public init(certificate: String, privateKey: String, minVersion: String = "1.2") {
        self.certificate = certificate
        self.privateKey = privateKey
        self.minVersion = minVersion
    }
}
