import NIOCore
import NIOSSL
import SSE
import SSEOrigin
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// https upstreams verified against a private CA made at test time.
final class UpstreamTLSTests: XCTestCase {
    private func startTLSOrigin(
        _ certificates: TestCertificates,
        requireClientCertificate: Bool = false
    ) throws -> OriginServer.Options {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificates.serverCertificate).map {
                .certificate($0)
            },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: certificates.serverKey, format: .pem))
        )
        if requireClientCertificate {
            tls.certificateVerification = .noHostnameVerification
            tls.trustRoots = .file(certificates.caCertificate)
        }
        var options = OriginServer.Options()
        options.tls = try NIOSSLContext(configuration: tls)
        return options
    }

    func testHTTPSUpstreamWithPrivateCA() async throws {
        let certificates = try TestCertificates.make(keyType: .rsa)
        let harness = try await Harness.start(origin: try self.startTLSOrigin(certificates)) { origin in
            let https = origin.replacingOccurrences(of: "http://", with: "https://")
            return [
                try Harness.feed("/trusted", upstream: "\(https)/a") {
                    $0.settings.upstream.tls = UpstreamTLSConfig(ca: certificates.caCertificate)
                },
                // Same origin, system trust store only: the private CA is not trusted, so it never connects.
                try Harness.feed("/untrusted", upstream: "\(https)/b"),
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        let trusted = try await harness.client("/trusted")
        let untrusted = try await harness.client("/untrusted")
        _ = try await trusted.waitForHead()
        _ = try await untrusted.waitForHead()
        try await eventually("trusted upstream streaming") { harness.origin.openConnections == 1 }
        harness.origin.publish(data: "over tls")
        let events = try await trusted.waitForEvents(1)
        XCTAssertEqual(events.first?.data, "over tls")
        XCTAssertEqual(harness.origin.requests.map(\.uri), ["/a"], "the untrusted feed never got past the handshake")
        let states = try await harness.metrics().feeds
        XCTAssertEqual(states.first { $0.path == "/untrusted" }?.upstreamState != .streaming, true)
        await trusted.close()
        await untrusted.close()
    }

    func testMutualTLSUpstreamWithECDSA() async throws {
        let certificates = try TestCertificates.make(keyType: .ecdsa)
        let harness = try await Harness.start(
            origin: try self.startTLSOrigin(certificates, requireClientCertificate: true)
        ) { origin in
            let https = origin.replacingOccurrences(of: "http://", with: "https://")
            return [
                try Harness.feed("/mtls", upstream: "\(https)/mtls") {
                    $0.settings.upstream.tls = UpstreamTLSConfig(
                        ca: certificates.caCertificate,
                        certificate: certificates.clientCertificate,
                        privateKey: certificates.clientKey
                    )
                },
                try Harness.feed("/nocert", upstream: "\(https)/nocert") {
                    $0.settings.upstream.tls = UpstreamTLSConfig(ca: certificates.caCertificate)
                },
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        let client = try await harness.client("/mtls")
        _ = try await client.waitForHead()
        try await eventually("mTLS upstream streaming") { harness.origin.openConnections == 1 }
        harness.origin.publish(data: "mutual")
        let events = try await client.waitForEvents(1)
        XCTAssertEqual(events.first?.data, "mutual")
        XCTAssertFalse(
            harness.origin.requests.contains { $0.uri == "/nocert" },
            "without a client certificate the origin refuses"
        )
        await client.close()
    }
}
