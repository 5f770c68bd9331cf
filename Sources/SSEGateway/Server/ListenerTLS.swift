import NIOConcurrencyHelpers
import NIOSSL

/// The TLS context of one listener, replaceable while the gateway runs: `SIGHUP` re-reads the
/// certificate and key, new handshakes use the new ones, connections already open keep theirs.
final class ListenerTLS: Sendable {
    private let current: NIOLockedValueBox<(config: ServerTLSConfig, context: NIOSSLContext)>

    init(config: ServerTLSConfig) throws {
        self.current = NIOLockedValueBox((config, try Self.makeContext(config)))
    }

    var context: NIOSSLContext { self.current.withLockedValue { $0.context } }
    var config: ServerTLSConfig { self.current.withLockedValue { $0.config } }

    /// Re-reads the files; on failure the old context stays in force and the error is thrown.
    func reload() throws {
        try self.reload(with: self.config)
    }

    /// Loads new settings (possibly other files); on failure the old ones stay in force.
    func reload(with config: ServerTLSConfig) throws {
        let context = try Self.makeContext(config)
        self.current.withLockedValue { $0 = (config, context) }
    }

    /// PEM chain and key (RSA or ECDSA), `min_version`, ALPN offering h2 then http/1.1.
    static func makeContext(_ config: ServerTLSConfig) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(config.certificate).map {
            NIOSSLCertificateSource.certificate($0)
        }
        let key = try NIOSSLPrivateKey(file: config.privateKey, format: .pem)
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        tls.minimumTLSVersion = config.minVersion == "1.3" ? .tlsv13 : .tlsv12
        tls.applicationProtocols = ["h2", "http/1.1"]
        return try NIOSSLContext(configuration: tls)
    }
}
