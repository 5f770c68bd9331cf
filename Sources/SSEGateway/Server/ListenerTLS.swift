import NIOConcurrencyHelpers
import NIOSSL

/// The TLS context of one listener, replaceable while the gateway runs: `SIGHUP` re-reads the
/// certificate and key, new handshakes use the new ones, connections already open keep theirs.
final class ListenerTLS: Sendable {
    let config: ServerTLSConfig
    private let current: NIOLockedValueBox<NIOSSLContext>

    init(config: ServerTLSConfig) throws {
        self.config = config
        self.current = NIOLockedValueBox(try Self.makeContext(config))
    }

    var context: NIOSSLContext { self.current.withLockedValue { $0 } }

    /// Re-reads the files; on failure the old context stays in force and the error is thrown.
    func reload() throws {
        let context = try Self.makeContext(self.config)
        self.current.withLockedValue { $0 = context }
    }

    /// PEM chain and key (RSA or ECDSA), `min_version`, ALPN offering h2 then http/1.1.
    static func makeContext(_ config: ServerTLSConfig) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(config.certificate).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: config.privateKey, format: .pem)
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        tls.minimumTLSVersion = config.minVersion == "1.3" ? .tlsv13 : .tlsv12
        tls.applicationProtocols = ["h2", "http/1.1"]
        return try NIOSSLContext(configuration: tls)
    }
}
