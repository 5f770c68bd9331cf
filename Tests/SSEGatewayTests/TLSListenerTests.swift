import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// TLS termination on a listener (SPEC §2 `listen[].tls`): HTTPS with RSA and ECDSA certificates, ALPN
/// (h2, http/1.1), `min_version`, certificate reload, and the handshake deadline.
final class TLSListenerTests: XCTestCase {
    /// A gateway with the cleartext listener first and the given TLS listeners after it.
    private func start(
        tls listeners: [ListenerConfig],
        configure: @escaping (inout GatewayConfig) -> Void = { _ in }
    ) async throws -> Harness {
        try await Harness.start(
            configure: { config in
                config.listen += listeners
                configure(&config)
            },
            feeds: { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        )
    }

    private func tlsPort(_ harness: Harness, _ index: Int = 1) -> Int {
        harness.gateway.listenerAddresses[index].port!
    }

    // MARK: HTTPS

    func testHTTPSStreamWithRSAAndECDSACertificates() async throws {
        for keyType in [TestCertificates.KeyType.rsa, .ecdsa] {
            let certificates = try TestCertificates.make(keyType: keyType)
            let harness = try await self.start(tls: [TLSTestConfig.listener(certificates)])
            do {
                try await eventually("upstream connected") { harness.origin.openConnections == 1 }
                // No ALPN offered: the server falls back to HTTP/1.1.
                let client = try await TestSSEClient.connect(
                    port: self.tlsPort(harness),
                    path: "/prices",
                    group: harness.clientGroup,
                    tls: try TLSTestConfig.client(trusting: certificates)
                )
                let head = try await client.waitForHead()
                XCTAssertEqual(head.status, .ok, "\(keyType)")
                XCTAssertEqual(head.version, .http1_1, "\(keyType)")
                XCTAssertEqual(head.headers["Content-Type"], ["text/event-stream; charset=utf-8"], "\(keyType)")
                XCTAssertEqual(head.headers["Cache-Control"], ["no-cache, no-transform"], "\(keyType)")
                XCTAssertEqual(head.headers["Transfer-Encoding"], ["chunked"], "\(keyType)")
                XCTAssertEqual(client.snapshot.negotiatedALPN, nil, "\(keyType): no ALPN offered, none negotiated")
                let peer = try await client.peerCertificateDER()
                XCTAssertEqual(
                    peer,
                    try TLSTestConfig.der(ofPEMFile: certificates.serverCertificate),
                    "\(keyType): served the configured certificate"
                )
                try await harness.waitUntilJoined(1)
                harness.origin.publish(data: "one \(keyType)")
                harness.origin.publish(data: "two\nlines")
                let events = try await client.waitForEvents(2)
                XCTAssertEqual(events.map(\.data), ["one \(keyType)", "two\nlines"])
                XCTAssertNotNil(events.first?.id)
                await client.close()
            } catch {
                await harness.stop()
                throw error
            }
            await harness.stop()
        }
    }

    func testUntrustedClientRefusesTheCertificate() async throws {
        // Sanity check of the trust setup the other tests rely on: a client that trusts another CA fails.
        let certificates = try TestCertificates.make(keyType: .ecdsa)
        let other = try TestCertificates.make(keyType: .ecdsa)
        let harness = try await self.start(tls: [TLSTestConfig.listener(certificates)])
        self.addTeardownBlock { await harness.stop() }
        do {
            _ = try await tlsHandshake(
                port: self.tlsPort(harness),
                group: harness.clientGroup,
                tls: try TLSTestConfig.client(trusting: other)
            )
            XCTFail("a client trusting a different CA completed the handshake")
        } catch {}
        let trusted = try await tlsHandshake(
            port: self.tlsPort(harness),
            group: harness.clientGroup,
            tls: try TLSTestConfig.client(trusting: certificates)
        )
        XCTAssertEqual(trusted.peerCertificateDER, try TLSTestConfig.der(ofPEMFile: certificates.serverCertificate))
    }

    // MARK: ALPN

    func testALPNSelectsHTTP2OrHTTP11() async throws {
        let certificates = try TestCertificates.make(keyType: .ecdsa)
        let harness = try await self.start(tls: [TLSTestConfig.listener(certificates)])
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let port = self.tlsPort(harness)

        // A browser-like offer (h2 first, http/1.1 as fallback) gets HTTP/2.
        let h2 = try await H2TestClient.connect(
            port: port,
            group: harness.clientGroup,
            tls: try TLSTestConfig.client(trusting: certificates, alpn: ["h2", "http/1.1"])
        )
        let stream = try await h2.request("/prices", scheme: "https", authority: "localhost:\(port)")
        let headers = try await stream.waitForHeaders()
        XCTAssertEqual(h2.snapshot.negotiatedALPN, "h2")
        XCTAssertEqual(headers.status, 200)
        XCTAssertEqual(headers.header("content-type"), ["text/event-stream; charset=utf-8"])

        // Only http/1.1 offered: HTTP/1.1.
        let http1 = try await TestSSEClient.connect(
            port: port,
            path: "/prices",
            group: harness.clientGroup,
            tls: try TLSTestConfig.client(trusting: certificates, alpn: ["http/1.1"])
        )
        let head = try await http1.waitForHead()
        XCTAssertEqual(http1.snapshot.negotiatedALPN, "http/1.1")
        XCTAssertEqual(head.version, .http1_1)
        XCTAssertEqual(head.status, .ok)

        try await harness.waitUntilJoined(2)
        harness.origin.publish(data: "to both")
        let overH2 = try await stream.waitForEvents(1)
        let overH1 = try await http1.waitForEvents(1)
        XCTAssertEqual(overH2.map(\.data), ["to both"])
        XCTAssertEqual(overH1.map(\.data), ["to both"])

        // A handshake-only probe offering just h2 negotiates it too.
        let probe = try await tlsHandshake(
            port: port,
            group: harness.clientGroup,
            tls: try TLSTestConfig.client(trusting: certificates, alpn: ["h2"])
        )
        XCTAssertEqual(probe.negotiatedALPN, "h2")
        await stream.cancel()
        await h2.close()
        await http1.close()
    }

    // MARK: min_version

    func testMinVersion13RefusesTLS12Clients() async throws {
        let certificates = try TestCertificates.make(keyType: .ecdsa)
        let harness = try await self.start(tls: [
            TLSTestConfig.listener(certificates, minVersion: "1.3"),
            TLSTestConfig.listener(certificates, minVersion: "1.2"),
        ])
        self.addTeardownBlock { await harness.stop() }
        let strict = self.tlsPort(harness, 1)
        let lenient = self.tlsPort(harness, 2)

        let tls12 = try TLSTestConfig.client(trusting: certificates, maximum: .tlsv12)
        do {
            let result = try await tlsHandshake(port: strict, group: harness.clientGroup, tls: tls12)
            XCTFail(
                "a TLS 1.2-only client completed a handshake with a min_version 1.3 listener: \(String(describing: result.version))"
            )
        } catch {}

        let tls13 = try TLSTestConfig.client(trusting: certificates, minimum: .tlsv13)
        let modern = try await tlsHandshake(port: strict, group: harness.clientGroup, tls: tls13)
        XCTAssertEqual(modern.version, .tlsv13)

        // The same 1.2 client is fine where min_version is 1.2, so the refusal above came from the setting.
        let old = try await tlsHandshake(port: lenient, group: harness.clientGroup, tls: tls12)
        XCTAssertEqual(old.version, .tlsv12)
    }

    // MARK: Certificate reload

    func testCertificateReloadServesNewCertificateToNewConnectionsOnly() async throws {
        let first = try TestCertificates.make(keyType: .ecdsa)
        let second = try TestCertificates.make(keyType: .ecdsa)
        // The listener reads copies, so that the test can replace them like an operator (or certbot) would.
        let live = try TestScratch.directory("live")
        let certPath = live.appendingPathComponent("server.pem").path
        let keyPath = live.appendingPathComponent("server.key").path
        func install(certificate: String, key: String) throws {
            try Data(contentsOf: URL(fileURLWithPath: certificate)).write(to: URL(fileURLWithPath: certPath))
            try Data(contentsOf: URL(fileURLWithPath: key)).write(to: URL(fileURLWithPath: keyPath))
        }
        try install(certificate: first.serverCertificate, key: first.serverKey)
        let listener = ListenerConfig(
            address: HostPort(host: "127.0.0.1", port: 0),
            tls: ServerTLSConfig(certificate: certPath, privateKey: keyPath)
        )
        let harness = try await self.start(tls: [listener])
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let port = self.tlsPort(harness)
        let firstDER = try TLSTestConfig.der(ofPEMFile: first.serverCertificate)
        let secondDER = try TLSTestConfig.der(ofPEMFile: second.serverCertificate)
        var trustBoth = TLSConfiguration.makeClientConfiguration()
        trustBoth.trustRoots = .certificates(
            try NIOSSLCertificate.fromPEMFile(first.caCertificate) + NIOSSLCertificate.fromPEMFile(second.caCertificate)
        )

        let existing = try await TestSSEClient.connect(
            port: port,
            path: "/prices",
            group: harness.clientGroup,
            tls: trustBoth
        )
        _ = try await existing.waitForHead()
        let existingPeer = try await existing.peerCertificateDER()
        XCTAssertEqual(existingPeer, firstDER)
        try await harness.waitUntilJoined(1)
        harness.origin.publish(data: "before reload")
        _ = try await existing.waitForEvents(1)

        try install(certificate: second.serverCertificate, key: second.serverKey)
        let reloaded = await harness.gateway.reloadCertificates()
        XCTAssertEqual(reloaded, [])
        let afterReload = try await tlsHandshake(port: port, group: harness.clientGroup, tls: trustBoth)
        XCTAssertEqual(afterReload.peerCertificateDER, secondDER, "a new connection must see the reloaded certificate")
        // A client that trusts only the new CA connects now.
        _ = try await tlsHandshake(
            port: port,
            group: harness.clientGroup,
            tls: try TLSTestConfig.client(trusting: second)
        )

        // The stream opened before the reload keeps going.
        harness.origin.publish(data: "after reload")
        let events = try await existing.waitForEvents(2)
        XCTAssertEqual(events.map(\.data), ["before reload", "after reload"])
        XCTAssertFalse(existing.snapshot.closed)

        // A broken key file: the reload reports it and the certificate in force stays.
        try Data("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n".utf8).write(
            to: URL(fileURLWithPath: keyPath)
        )
        let errors = await harness.gateway.reloadCertificates()
        XCTAssertEqual(errors.count, 1, "\(errors)")
        let afterBroken = try await tlsHandshake(port: port, group: harness.clientGroup, tls: trustBoth)
        XCTAssertEqual(afterBroken.peerCertificateDER, secondDER, "a failed reload must keep the old certificate")

        // Half-way through a rotation (new certificate, old key): refused too, the old pair stays.
        try install(certificate: first.serverCertificate, key: second.serverKey)
        let mismatched = await harness.gateway.reloadCertificates()
        XCTAssertEqual(
            mismatched.count,
            1,
            "a certificate with a key that does not match it must be refused: \(mismatched)"
        )
        let afterMismatch = try await tlsHandshake(port: port, group: harness.clientGroup, tls: trustBoth)
        XCTAssertEqual(afterMismatch.peerCertificateDER, secondDER)

        harness.origin.publish(data: "still streaming")
        let all = try await existing.waitForEvents(3)
        XCTAssertEqual(all.last?.data, "still streaming")
        await existing.close()
    }

    // MARK: Handshake deadline

    func testStalledHandshakeIsClosedAfterHeaderTimeout() async throws {
        let certificates = try TestCertificates.make(keyType: .ecdsa)
        let harness = try await self.start(tls: [TLSTestConfig.listener(certificates)]) {
            $0.limits.headerTimeout = .milliseconds(200)
        }
        self.addTeardownBlock { await harness.stop() }
        let port = self.tlsPort(harness)
        // Nothing at all, and half of a TLS record header (a handshake that starts and never finishes).
        for (label, bytes) in [("silent", ""), ("partial ClientHello", "\u{16}\u{03}\u{01}\u{00}")] {
            let started = NIODeadline.now()
            let result = try await rawExchange(port: port, bytes, group: harness.clientGroup, timeout: .seconds(6))
            let elapsed = NIODeadline.now() - started
            XCTAssertTrue(
                result.closedByServer,
                "\(label): the server must close a connection that never completes the handshake"
            )
            XCTAssertGreaterThanOrEqual(
                elapsed.nanoseconds,
                TimeAmount.milliseconds(150).nanoseconds,
                "\(label): closed before the header timeout"
            )
            XCTAssertLessThan(
                elapsed.nanoseconds,
                TimeAmount.seconds(5).nanoseconds,
                "\(label): not closed at the header timeout (200 ms; 5 s is a loaded machine's slack)"
            )
        }
        // A completed handshake that is followed by nothing (no request head, no HTTP/2 preface or stream)
        // is held to the same deadline, over HTTP/1.1 and over HTTP/2.
        for alpn in ["http/1.1", "h2"] {
            let idle = try await tlsHandshakeThenIdle(
                port: port,
                group: harness.clientGroup,
                tls: try TLSTestConfig.client(trusting: certificates, alpn: [alpn]),
                timeout: .seconds(6)
            )
            XCTAssertEqual(idle.negotiatedALPN, alpn)
            let closedAfter = try XCTUnwrap(
                idle.closedAfter,
                "\(alpn): an idle connection after the handshake must be closed"
            )
            XCTAssertLessThan(closedAfter.nanoseconds, TimeAmount.seconds(5).nanoseconds, "\(alpn)")
        }
        // A real handshake is not affected by the deadline.
        let result = try await tlsHandshake(
            port: port,
            group: harness.clientGroup,
            tls: try TLSTestConfig.client(trusting: certificates)
        )
        XCTAssertNotNil(result.peerCertificateDER)
    }
}
