import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Issue 14, item 3: connection-level limits attacked on a running gateway while 50 clients stream. Each
/// test connects the readers first, then sets the limit (as a reload would), attacks, and checks that
/// every reader received every event published during the attack, in order.
final class ConnectionLimitTests: XCTestCase {
    private func start(tls certificates: TestCertificates? = nil) async throws -> Harness {
        try await Harness.start(
            configure: { config in
                if let certificates { config.listen.append(TLSTestConfig.listener(certificates)) }
            },
            feeds: { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        )
    }

    private func readers(_ harness: Harness, count: Int = 50) async throws -> [TestSSEClient] {
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        var readers: [TestSSEClient] = []
        for _ in 0..<count { readers.append(try await harness.client("/prices", recordBody: false)) }
        for reader in readers { _ = try await reader.waitForHead() }
        try await harness.waitUntilJoined(count)
        return readers
    }

    private func setLimits(_ harness: Harness, _ change: (inout LimitsConfig) -> Void) {
        var limits = harness.gateway.context.limits
        change(&limits)
        harness.gateway.context.setLimits(limits)
    }

    /// Publishes one event every 20 ms while `attack` runs, then checks that every reader got them all.
    private func publishing(
        to readers: [TestSSEClient],
        _ harness: Harness,
        during attack: () async throws -> Void
    ) async throws {
        let published = ManagedCounter()
        let publisher = Task {
            while !Task.isCancelled {
                published.increment()
                harness.origin.publish(data: "tick \(published.value)")
                try? await Task.sleep(nanoseconds: 20_000_000)
            }
        }
        try await attack()
        publisher.cancel()
        _ = await publisher.result
        let total = published.value
        for reader in readers {
            let events = try await reader.waitForEvents(total, timeout: .seconds(10))
            XCTAssertEqual(events.map(\.data), (1...total).map { "tick \($0)" }, "every event, in order")
            XCTAssertFalse(reader.isClosed)
        }
    }

    private func metrics(_ harness: Harness) async throws -> String {
        try await harness.gateway.metrics.render(on: harness.group.next()).get()
    }

    // MARK: New connections per second

    func testConnectionsOverTheListenerRateGet503WithAJitteredRetryAfter() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let readers = try await self.readers(harness)
        self.setLimits(harness) { $0.newConnectionsPerSecond = 20 }
        let port = harness.port
        let group = harness.clientGroup
        let responses = NIOLockedValueBox<[String]>([])
        let started = NIODeadline.now()
        try await self.publishing(to: readers, harness) {
            try await churn(200, concurrency: 50) { _ in
                let (response, _) = try await oneShotConnection(
                    port: port,
                    group: group,
                    request: "GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                )
                responses.withLockedValue { $0.append(response) }
            }
        }
        let took = NIODeadline.now() - started
        let all = responses.withLockedValue { $0 }
        let refused = all.filter { $0.hasPrefix("HTTP/1.1 503 ") }
        let admitted = all.filter { $0.hasPrefix("HTTP/1.1 404 ") }
        XCTAssertEqual(refused.count + admitted.count, 200, "every connection got an answer")
        // A second's worth at once, then 20 per second of the attack.
        let allowance = 20 + Int(took.nanoseconds / 50_000_000) + 1
        XCTAssertGreaterThanOrEqual(admitted.count, 20)
        XCTAssertLessThanOrEqual(admitted.count, allowance, "took \(took)")
        for response in refused {
            let retryAfter = RawConnection.parseResponses(response).first?.header("Retry-After").first
            XCTAssertTrue(["1", "2"].contains(retryAfter), response)
            XCTAssertTrue(response.contains("Connection: close"), response)
        }
        let metrics = try await self.metrics(harness)
        XCTAssertTrue(
            metrics.contains("ssegate_connections_refused_total{reason=\"connection_rate\"} \(refused.count)"),
            metrics
        )
        // The readers' connections and the admitted ones: what a crash storm's peak is read from.
        XCTAssertTrue(
            metrics.contains("ssegate_connections_accepted_total \(readers.count + admitted.count)"),
            metrics
        )
        // Once the bucket refills, a new client streams.
        try await Task.sleep(nanoseconds: 1_100_000_000)
        let late = try await harness.client("/prices")
        let head = try await late.waitForHead()
        XCTAssertEqual(head.status, .ok)
        for client in readers + [late] { await client.close() }
    }

    // MARK: TLS handshakes per second

    func testTLSHandshakesOverTheListenerRateAreClosedBeforeTheHandshake() async throws {
        let certificates = try TestCertificates.make(keyType: .ecdsa)
        let harness = try await self.start(tls: certificates)
        self.addTeardownBlock { await harness.stop() }
        let readers = try await self.readers(harness)
        let tlsPort = harness.gateway.listenerAddresses[1].port!
        let tls = try TLSTestConfig.client(trusting: certificates)
        // A TLS reader from before the limit keeps streaming.
        let tlsReader = try await TestSSEClient.connect(
            port: tlsPort,
            path: "/prices",
            group: harness.clientGroup,
            tls: tls
        )
        _ = try await tlsReader.waitForHead()
        self.setLimits(harness) { $0.tlsHandshakesPerSecond = 5 }
        let group = harness.clientGroup
        let completed = ManagedCounter()
        let failed = ManagedCounter()
        let started = NIODeadline.now()
        try await self.publishing(to: readers + [tlsReader], harness) {
            try await churn(40, concurrency: 40) { _ in
                do {
                    _ = try await tlsHandshake(port: tlsPort, group: group, tls: tls)
                    completed.increment()
                } catch {
                    failed.increment()
                }
            }
        }
        let took = NIODeadline.now() - started
        XCTAssertEqual(completed.value + failed.value, 40)
        XCTAssertGreaterThanOrEqual(completed.value, 5)
        XCTAssertLessThanOrEqual(completed.value, 5 + Int(took.nanoseconds / 200_000_000) + 1, "took \(took)")
        let metrics = try await self.metrics(harness)
        XCTAssertTrue(
            metrics.contains("ssegate_connections_refused_total{reason=\"tls_handshake_rate\"} \(failed.value)"),
            metrics
        )
        // The cleartext listener is not limited by the TLS listener's handshakes.
        let cleartext = try await harness.client("/prices")
        let cleartextHead = try await cleartext.waitForHead()
        XCTAssertEqual(cleartextHead.status, .ok)
        for client in readers + [tlsReader, cleartext] { await client.close() }
    }
}

extension ConnectionLimitTests {
    // MARK: TLS handshake timeout

    func testAStalledTLSHandshakeIsClosedAtTheHandshakeTimeout() async throws {
        let certificates = try TestCertificates.make(keyType: .ecdsa)
        let harness = try await Harness.start(
            configure: { config in
                config.listen.append(TLSTestConfig.listener(certificates))
                config.limits.tlsHandshakeTimeout = .milliseconds(300)
                config.limits.headerTimeout = .seconds(10)
            },
            feeds: { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        )
        self.addTeardownBlock { await harness.stop() }
        let readers = try await self.readers(harness)
        let tlsPort = harness.gateway.listenerAddresses[1].port!
        let group = harness.clientGroup
        let closed = ManagedCounter()
        try await self.publishing(to: readers, harness) {
            // 100 connections that never finish a handshake: half send nothing, half a TLS record header.
            try await churn(100, concurrency: 100) { index in
                let bytes = index % 2 == 0 ? "" : "\u{16}\u{03}\u{01}\u{00}"
                let started = NIODeadline.now()
                let result = try await rawExchange(port: tlsPort, bytes, group: group, timeout: .seconds(4))
                if result.closedByServer, NIODeadline.now() - started < .seconds(4) { closed.increment() }
            }
        }
        XCTAssertEqual(closed.value, 100, "every stalled handshake is closed at 300 ms, not the 10 s header timeout")
        let metrics = try await self.metrics(harness)
        XCTAssertTrue(metrics.contains("ssegate_tls_handshake_timeouts_total 100"), metrics)
        // A finished handshake is then held to the header timeout, not the handshake timeout.
        let idle = try await tlsHandshakeThenIdle(
            port: tlsPort,
            group: group,
            tls: try TLSTestConfig.client(trusting: certificates, alpn: ["http/1.1"]),
            timeout: .seconds(1)
        )
        XCTAssertNil(idle.closedAfter, "closed \(String(describing: idle.closedAfter)) after its handshake")
        for reader in readers { await reader.close() }
    }
}

extension ConnectionLimitTests {
    // MARK: Header count

    func testMoreHeaderFieldsThanMaxHeaderCountGet431OverHTTP1AndHTTP2() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let readers = try await self.readers(harness)
        let port = harness.port
        let group = harness.clientGroup
        // Small fields: 150 of them are 2 KB, far under max_header_bytes; only their number is refused.
        let fields = (0..<150).map { ("x-f\($0)", "v") }
        let http1Request =
            "GET /prices HTTP/1.1\r\nHost: a\r\n" + fields.map { "\($0.0): \($0.1)\r\n" }.joined() + "\r\n"
        let http1Refused = ManagedCounter()
        let h2 = try await H2TestClient.connect(port: port, group: group)
        var h2Statuses: [Int?] = []
        try await self.publishing(to: readers, harness) {
            try await churn(100, concurrency: 20) { _ in
                let (response, closedByServer) = try await oneShotConnection(
                    port: port,
                    group: group,
                    request: http1Request
                )
                if response.hasPrefix("HTTP/1.1 431 "), closedByServer { http1Refused.increment() }
            }
            for _ in 0..<20 {
                let stream = try await h2.request("/prices", headers: fields)
                h2Statuses.append(try await stream.waitForHeaders().status)
            }
        }
        XCTAssertEqual(http1Refused.value, 100, "431 and a close")
        XCTAssertEqual(h2Statuses, Array(repeating: 431, count: 20))
        XCTAssertFalse(h2.isClosed, "a refused HTTP/2 stream leaves its connection alone")
        // Exactly max_header_count fields (Host, Connection and 98 more) are accepted.
        let (response, _) = try await oneShotConnection(
            port: port,
            group: group,
            request: "GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                + (0..<98).map { "x-f\($0): v\r\n" }.joined() + "\r\n"
        )
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 404 "), response)
        let metrics = try await self.metrics(harness)
        XCTAssertTrue(metrics.contains("ssegate_header_count_refusals_total 120"), metrics)
        await h2.close()
        for reader in readers { await reader.close() }
    }
}

extension ConnectionLimitTests {
    // MARK: Idle connections

    func testIdleConnectionsAreClosedAtTheIdleTimeoutAndKeepAlivePollsGoOn() async throws {
        let harness = try await Harness.start(
            configure: { config in
                config.limits.idleConnectionTimeout = .milliseconds(800)
                config.limits.headerTimeout = .seconds(10)
            },
            feeds: { origin in
                [
                    try Harness.feed("/prices", upstream: "\(origin)/prices") {
                        $0.settings.poll.gather = .milliseconds(10)
                    }
                ]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        let readers = try await self.readers(harness)
        let port = harness.port
        let group = harness.clientGroup
        let http1Closed = ManagedCounter()
        let h2Closed = ManagedCounter()
        var polls = 0
        var pollerClosed = true
        try await self.publishing(to: readers, harness) {
            // A poll client on one keep-alive connection, coming back 250 ms after each answer.
            let poller = try await RawConnection.connect(port: port, group: group)
            for round in 1...5 {
                try await poller.send("GET /prices?transport=poll HTTP/1.1\r\nHost: gw\r\n\r\n")
                polls = try await poller.waitForResponses(round).filter { $0.status == 200 }.count
                try await Task.sleep(nanoseconds: 250_000_000)
            }
            pollerClosed = poller.isClosed
            await poller.closeAndWait()
            // 50 keep-alive connections left idle after a 404, and 10 HTTP/2 connections after their stream.
            try await churn(50, concurrency: 50) { _ in
                let connection = try await RawConnection.connect(port: port, group: group)
                try await connection.send("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
                _ = try await connection.waitForResponses(1)
                let answered = NIODeadline.now()
                if try await waitUntil(timeout: .seconds(4), { connection.isClosed }),
                    NIODeadline.now() - answered >= .milliseconds(600)
                {
                    http1Closed.increment()
                }
                await connection.closeAndWait()
            }
            try await churn(10, concurrency: 10) { _ in
                let h2 = try await H2TestClient.connect(port: port, group: group)
                let stream = try await h2.request("/nope")
                _ = try await stream.waitForHeaders()
                if try await waitUntil(timeout: .seconds(4), { h2.isClosed }) { h2Closed.increment() }
                await h2.close()
            }
        }
        XCTAssertEqual(polls, 5, "every poll on the keep-alive connection was answered")
        XCTAssertFalse(pollerClosed, "a poll client coming back after retry keeps its connection")
        XCTAssertEqual(http1Closed.value, 50, "idle keep-alive connections closed at 800 ms, not at the header timeout")
        XCTAssertEqual(h2Closed.value, 10, "HTTP/2 connections without a stream closed at 800 ms")
        let metrics = try await self.metrics(harness)
        XCTAssertTrue(metrics.contains("ssegate_idle_connection_closes_total 60"), metrics)
        for reader in readers { await reader.close() }
    }
}
