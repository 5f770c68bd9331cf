import NIOCore
import Synchronization
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Issue 16, findings 2 and 7: HTTP/2 floods that SwiftNIO's own defences do not count. WINDOW_UPDATE
/// floods (no limit in NIO) and rapid reset spread over many connections (NIO's limit is per connection)
/// get GOAWAY (ENHANCE_YOUR_CALM) and a close, leave nothing behind, and never disturb other clients.
final class HTTP2FloodTests: XCTestCase {
    private static let enhanceYourCalm: UInt32 = 0xB

    override func setUp() async throws {
        try await waitUntilNoLiveObjects()
    }

    private func start(configure: @escaping (inout GatewayConfig) -> Void = { _ in }) async throws -> Harness {
        try await Harness.start(configure: configure) { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices")]
        }
    }

    /// A well-behaved HTTP/2 client streaming `/prices` (a real NIO client: it sends WINDOW_UPDATEs for
    /// what it reads) and an HTTP/1 one.
    private func normalClients(_ harness: Harness) async throws -> (H2TestClient, H2TestStream, TestSSEClient) {
        let h2 = try await H2TestClient.connect(
            port: harness.port,
            group: harness.clientGroup,
            streamWindow: 65535,
            connectionWindow: 65535
        )
        let stream = try await h2.request("/prices")
        _ = try await stream.waitForHeaders()
        let http1 = try await harness.client("/prices")
        try await harness.waitUntilJoined(2)
        return (h2, stream, http1)
    }

    // MARK: WINDOW_UPDATE flood (finding 7)

    func testWindowUpdateFloodGetsGoAwayAndIsClosed() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let (h2, stream, http1) = try await self.normalClients(harness)

        let attacker = try await H2RawConnection.connect(port: harness.port, group: harness.clientGroup)
        try await attacker.wait("the server's SETTINGS") { $0.contains { $0.type == H2RawConnection.Frame.settings } }
        let started = NIODeadline.now()
        // 200,000 frames in 20 writes of 10,000 (a fraction of what the attacker sent per second).
        var writes = 0
        while writes < 20, !attacker.isClosed {
            attacker.sendWindowUpdates(streamID: 0, count: 10_000)
            guard await attacker.flushAndWait() else { break }
            writes += 1
        }
        let frames = try await attacker.wait("GOAWAY", timeout: .seconds(8)) {
            $0.contains { $0.type == H2RawConnection.Frame.goAway }
        }
        XCTAssertEqual(frames.last { $0.type == H2RawConnection.Frame.goAway }?.errorCode, Self.enhanceYourCalm)
        try await eventually("the flooding connection closed", timeout: .seconds(8)) { attacker.isClosed }
        // The flood itself would take much longer; `writes < 20` below is the sharp check.
        XCTAssertLessThan(NIODeadline.now() - started, .seconds(8))
        XCTAssertLessThan(writes, 20, "the gateway closed the connection before the flood was over")
        let metrics = try await harness.gateway.metrics.render(on: harness.group.next()).get()
        XCTAssertTrue(metrics.contains("ssegate_http2_flood_closes_total{reason=\"no_progress_frames\"} 1"), metrics)

        // Both normal clients still stream.
        harness.origin.publish(data: "after the flood")
        let h2Events = try await stream.waitForEvents(1)
        XCTAssertEqual(h2Events.last?.data, "after the flood")
        let http1Events = try await http1.waitForEvents(1)
        XCTAssertEqual(http1Events.last?.data, "after the flood")
        await h2.close()
        await http1.close()
    }

    func testWindowUpdatesForReceivedDataAreAllowed() async throws {
        // A client with 64 KiB windows reading 2,000 events of 1 KiB (in rounds below `max_queue`): it
        // sends WINDOW_UPDATEs for the connection and the stream as it reads (NIO's client does, like
        // browsers), well over the 5 a connection gets without any DATA.
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let (h2, stream, http1) = try await self.normalClients(harness)
        let payload = String(repeating: "x", count: 1024)
        for round in 0..<20 {
            for index in 0..<100 { harness.origin.publish(data: "\(round * 100 + index) \(payload)") }
            _ = try await stream.waitForEvents(round * 100 + 100)
        }
        XCTAssertEqual(stream.events.count, 2000)
        XCTAssertFalse(h2.isClosed, "a client granting window for data it received is not a flood")
        await h2.close()
        await http1.close()
    }

    // MARK: Rapid reset over many connections (finding 2)

    func testRapidResetSpreadOverConnectionsHitsTheListenerBudget() async throws {
        // Each connection sends 20 HEADERS + RST_STREAM pairs (NIO allows 200 per connection per 30 s);
        // 60 connections make 1,200 premature resets, over the listener's 100 per second.
        let harness = try await self.start { $0.limits.prematureResetsPerSecond = 100 }
        self.addTeardownBlock { await harness.stop() }
        let (h2, stream, http1) = try await self.normalClients(harness)
        let baseline = LiveObjects.snapshot
        let port = harness.port
        let group = harness.clientGroup
        let calmed = ManagedCounter()

        try await churn(60, concurrency: 10) { _ in
            let attacker = try await H2RawConnection.connect(port: port, group: group)
            var streamID: UInt32 = 1
            for _ in 0..<20 {
                attacker.sendHeaders(
                    streamID: streamID,
                    [(":method", "GET"), (":scheme", "http"), (":path", "/prices"), (":authority", "a")]
                )
                attacker.sendRSTStream(streamID: streamID)
                streamID += 2
            }
            attacker.sendPing()
            _ = await attacker.flushAndWait()
            // Either the gateway processes every pair (its PING ACK comes after them) and keeps the
            // connection, or it sends GOAWAY and closes.
            let frames = try await attacker.wait("a GOAWAY or the PING ACK", timeout: .seconds(5)) { frames in
                frames.contains { $0.type == H2RawConnection.Frame.goAway }
                    || frames.contains { $0.type == H2RawConnection.Frame.ping && $0.flags & 0x1 == 1 }
                    || attacker.isClosed
            }
            if frames.contains(where: {
                $0.type == H2RawConnection.Frame.goAway && $0.errorCode == Self.enhanceYourCalm
            }) {
                calmed.increment()
            }
            await attacker.close()
        }
        XCTAssertGreaterThan(
            calmed.value,
            30,
            "most attacking connections are closed once the listener's budget is spent"
        )
        // The gateway may still be working through what the last attackers sent (a busy machine).
        try await waitUntil(timeout: .seconds(10), interval: .milliseconds(10)) { LiveObjects.snapshot == baseline }
        XCTAssertEqual(LiveObjects.snapshot, baseline, "every attacking stream and connection released")
        let metrics = try await harness.gateway.metrics.render(on: harness.group.next()).get()
        // A client may close before it reads its GOAWAY: the gateway counts at least what the clients saw.
        let counted = metrics.split(separator: "\n").first {
            $0.hasPrefix("ssegate_http2_flood_closes_total{reason=\"premature_resets\"}")
        }
        XCTAssertGreaterThanOrEqual(
            counted.flatMap { Int($0.split(separator: " ").last ?? "") } ?? -1,
            calmed.value,
            metrics
        )

        // The clients that were streaming all along still are, and a new one gets in.
        harness.origin.publish(data: "after the resets")
        let h2Events = try await stream.waitForEvents(1)
        XCTAssertEqual(h2Events.last?.data, "after the resets")
        let http1Events = try await http1.waitForEvents(1)
        XCTAssertEqual(http1Events.last?.data, "after the resets")
        // New streams are refused for the rest of a second whose budget the attack spent; the next has one.
        try await Task.sleep(for: .milliseconds(1100))
        let late = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        let lateStream = try await late.request("/prices")
        let lateHead = try await lateStream.waitForHeaders()
        XCTAssertEqual(lateHead.status, 200)
        XCTAssertFalse(h2.isClosed)
        await late.close()
        await h2.close()
        await http1.close()
    }

    func testStreamsResetLongAfterOpeningAreNotPremature() async throws {
        // An EventSource closed after a while resets its stream too; with a budget of 1 per second, 20 such
        // departures in a burst must not close the connection.
        let harness = try await self.start { $0.limits.prematureResetsPerSecond = 1 }
        self.addTeardownBlock { await harness.stop() }
        let connection = try await H2RawConnection.connect(port: harness.port, group: harness.clientGroup)
        self.addTeardownBlock { await connection.close() }
        try await connection.wait("the server's SETTINGS") { $0.contains { $0.type == H2RawConnection.Frame.settings } }
        var streamID: UInt32 = 1
        for _ in 0..<20 {
            connection.sendHeaders(
                streamID: streamID,
                [(":method", "GET"), (":scheme", "http"), (":path", "/prices"), (":authority", "a")]
            )
            streamID += 2
        }
        connection.flush()
        try await harness.waitUntilJoined(20)
        try await Task.sleep(nanoseconds: 2_100_000_000)
        for id in stride(from: UInt32(1), to: streamID, by: 2) { connection.sendRSTStream(streamID: id) }
        connection.flush()
        try await eventually("every stream left") { try await harness.metrics().connectedClients == 0 }
        // Still open: a new stream is served.
        connection.sendHeaders(
            streamID: streamID,
            [(":method", "GET"), (":scheme", "http"), (":path", "/prices"), (":authority", "a")]
        )
        connection.flush()
        let frames = try await connection.wait("a response on the new stream") {
            $0.contains { $0.streamID == streamID }
        }
        XCTAssertFalse(frames.contains { $0.type == H2RawConnection.Frame.goAway })
    }

    // MARK: Streams abandoned by closing the connection (finding 2: stream churn per listener)

    private static func get(_ path: String) -> [(String, String)] {
        [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "a")]
    }

    /// Connections that each open 10 streams and close the connection before the gateway answered them
    /// (no RST_STREAM): the close charges the streams to the listener's budget (50 per second), and once it
    /// is spent the next connections get GOAWAY at their first HEADERS, which never reaches the HTTP/2
    /// handler. The clients streaming all along keep streaming.
    func testStreamsAbandonedByClosingConnectionsSpendTheListenerBudget() async throws {
        let harness = try await Harness.start(
            configure: { $0.limits.prematureResetsPerSecond = 50 },
            feeds: { origin in
                [
                    try Harness.feed("/prices", upstream: "\(origin)/prices"),
                    // A new room's clients wait (unanswered) for its upstream's first response.
                    try Harness.feed("/rooms/{room}", upstream: "\(origin)/rooms/{room}") {
                        $0.settings.upstream.connectTimeout = .seconds(10)
                    },
                ]
            }
        )
        defer { Task { await harness.stop() } }
        let (h2, stream, http1) = try await self.normalClients(harness)
        harness.origin.responseDelay = .seconds(10)
        let baseline = LiveObjects.snapshot
        let port = harness.port
        let group = harness.clientGroup
        let calmed = ManagedCounter()
        try await churn(60, concurrency: 4) { _ in
            let attacker = try await H2RawConnection.connect(port: port, group: group)
            var streamID: UInt32 = 1
            for _ in 0..<10 {
                attacker.sendHeaders(streamID: streamID, Self.get("/rooms/lobby"))
                streamID += 2
            }
            attacker.sendPing()
            _ = await attacker.flushAndWait()
            let frames = try await attacker.wait("a GOAWAY or the PING ACK", timeout: .seconds(5)) { frames in
                frames.contains { $0.type == H2RawConnection.Frame.goAway }
                    || frames.contains { $0.type == H2RawConnection.Frame.ping && $0.flags & 0x1 == 1 }
                    || attacker.isClosed
            }
            XCTAssertFalse(
                frames.contains { $0.type == H2RawConnection.Frame.headers },
                "the room's streams are still unanswered"
            )
            if frames.contains(where: {
                $0.type == H2RawConnection.Frame.goAway && $0.errorCode == Self.enhanceYourCalm
            }) {
                calmed.increment()
            }
            await attacker.close()
        }
        XCTAssertGreaterThan(calmed.value, 30, "most connections are refused once the listener's budget is spent")
        let deadline = NIODeadline.now() + .seconds(5)
        while LiveObjects.snapshot != baseline, NIODeadline.now() < deadline {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTAssertEqual(LiveObjects.snapshot, baseline, "every abandoned stream and connection released")

        harness.origin.publish(data: "after the churn")
        let h2Events = try await stream.waitForEvents(1)
        XCTAssertEqual(h2Events.last?.data, "after the churn")
        let http1Events = try await http1.waitForEvents(1)
        XCTAssertEqual(http1Events.last?.data, "after the churn")
        XCTAssertFalse(h2.isClosed)
        // The next second has a budget again: a new client is served.
        try await Task.sleep(for: .milliseconds(1100))
        let late = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        let lateHead = try await late.request("/prices").waitForHeaders()
        XCTAssertEqual(lateHead.status, 200)
        await late.close()
        await h2.close()
        await http1.close()
    }

    /// Streams that got their response head are clients leaving, however soon after opening (a closed
    /// tab): with a budget of 1 per second, 20 answered streams reset at once and 10 connections closed
    /// under answered streams charge nothing, and new streams are still served.
    func testStreamsEndedAfterTheirResponseAreNotCharged() async throws {
        let harness = try await self.start { $0.limits.prematureResetsPerSecond = 1 }
        defer { Task { await harness.stop() } }
        let connection = try await H2RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { Task { await connection.close() } }
        var streamID: UInt32 = 1
        for _ in 0..<20 {
            connection.sendHeaders(streamID: streamID, Self.get("/prices"))
            streamID += 2
        }
        connection.flush()
        let opened = streamID
        try await connection.wait("20 response heads") { frames in
            Set(frames.filter { $0.type == H2RawConnection.Frame.headers }.map(\.streamID)).count == 20
        }
        for id in stride(from: UInt32(1), to: opened, by: 2) { connection.sendRSTStream(streamID: id) }
        connection.sendPing()
        connection.flush()
        try await connection.wait("the PING ACK") { frames in
            frames.contains { $0.type == H2RawConnection.Frame.ping && $0.flags & 0x1 == 1 }
        }

        let port = harness.port
        let group = harness.clientGroup
        try await churn(10, concurrency: 5) { _ in
            let client = try await H2RawConnection.connect(port: port, group: group)
            client.sendHeaders(streamID: 1, Self.get("/prices"))
            client.flush()
            try await client.wait("the response head") { $0.contains { $0.type == H2RawConnection.Frame.headers } }
            await client.close()
        }

        connection.sendHeaders(streamID: streamID, Self.get("/prices"))
        connection.flush()
        let frames = try await connection.wait("a response on the new stream") {
            $0.contains { $0.streamID == streamID && $0.type == H2RawConnection.Frame.headers }
                || $0.contains { $0.type == H2RawConnection.Frame.goAway }
        }
        XCTAssertFalse(frames.contains { $0.type == H2RawConnection.Frame.goAway }, "nothing was charged")
        let late = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        let lateHead = try await late.request("/prices").waitForHeaders()
        XCTAssertEqual(lateHead.status, 200)
        await late.close()
    }
}

/// A counter the churn tasks share.
final class ManagedCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { self.count.add(1, ordering: .relaxed) }
    var value: Int { self.count.load(ordering: .relaxed) }
}
