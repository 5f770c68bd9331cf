@testable import SSEGateTestSupport
@testable import SSEGateway

extension TLSTestConfig {
    /// A listener config terminating TLS with the server certificate and key of `certificates`.
    static func listener(_ certificates: TestCertificates, minVersion: String = "1.2") -> ListenerConfig {
        ListenerConfig(
            address: HostPort(host: "127.0.0.1", port: 0),
            tls: ServerTLSConfig(
                certificate: certificates.serverCertificate,
                privateKey: certificates.serverKey,
                minVersion: minVersion
            )
        )
    }
}
