import NIOSSL

/// Builds the client TLS context for an https upstream from the config, once per feed definition.
enum UpstreamTLS {
    static func makeContext(_ config: UpstreamTLSConfig?) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let config {
            if let ca = config.ca {
                tls.trustRoots = .file(ca)
            }
            if let certificate = config.certificate {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
            }
            if let key = config.privateKey {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
            if !config.verify {
                tls.certificateVerification = .none
            }
        }
        tls.applicationProtocols = ["http/1.1"]
        return try NIOSSLContext(configuration: tls)
    }

    /// SNI must name a host, never an IP address literal.
    static func serverName(for host: String) -> String? {
        if host.contains(":") { return nil }
        if host.split(separator: ".").count == 4 && host.allSatisfy({ $0.isNumber || $0 == "." }) { return nil }
        return host
    }
}
