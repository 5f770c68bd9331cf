import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

final class BackpressureIntegrationTests: XCTestCase {
    func testNeverReadingClientIsEvictedWhileFiftyOthersGetEveryEvent() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.client.maxQueue = 256 * 1024
                    $0.settings.client.maxLag = .seconds(30)
                    $0.settings.replay.maxEvents = 10
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let stalled = try await harness.client("/prices", receiveBuffer: 4096, reading: false)
        var readers: [TestSSEClient] = []
        for _ in 0..<50 { readers.append(try await harness.client("/prices", recordBody: false)) }
        for reader in readers { _ = try await reader.waitForHead() }
        try await eventually("51 joined") { try await harness.metrics().connectedClients == 51 }

        // 400 events of 8 KiB (3.2 MiB): far beyond the stalled client's socket buffers and max_queue,
        // paced (10 events per 5 ms) so that the readers, which share the two cores, keep up.
        let payload = String(repeating: "p", count: 8 * 1024)
        let total = 400
        for index in 1...total {
            harness.origin.publish(data: "\(index) \(payload)")
            if index % 10 == 0 { try await Task.sleep(nanoseconds: 5_000_000) }
        }
        for reader in readers {
            let events = try await reader.waitForEvents(total, timeout: .seconds(20))
            XCTAssertEqual(events.count, total)
            XCTAssertEqual(events.last?.id, String(total))
            XCTAssertEqual(events.map(\.id), (1...total).map { String($0) })
        }
        try await eventually("stalled client evicted") {
            try await harness.metrics().delivery["/prices"]?.evictionsMaxQueue == 1
        }
        let snapshot = try await harness.metrics()
        XCTAssertEqual(snapshot.connectedClients, 50)
        XCTAssertEqual(snapshot.delivery["/prices"]?.evictionsMaxLag, 0)
        XCTAssertEqual(snapshot.queuedBytes, 0, "nothing left queued for anyone")
        XCTAssertEqual(harness.origin.totalConnections, 1)
        let metrics = try await harness.gateway.metrics.render(on: harness.group.next()).get()
        XCTAssertTrue(metrics.contains("ssegate_evictions_total{feed=\"/prices\",reason=\"max_queue\"} 1"), metrics)
        await stalled.close()
        for reader in readers { await reader.close() }
    }

    func testBlockedClientIsEvictedForLag() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.client.maxQueue = 64 * 1024 * 1024
                    $0.settings.client.maxLag = .milliseconds(300)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let stalled = try await harness.client("/prices", receiveBuffer: 4096, reading: false)
        let reader = try await harness.client("/prices")
        _ = try await reader.waitForHead()
        try await eventually("2 joined") { try await harness.metrics().connectedClients == 2 }
        let payload = String(repeating: "p", count: 16 * 1024)
        for index in 1...300 { harness.origin.publish(data: "\(index) \(payload)") }
        _ = try await reader.waitForEvents(300, timeout: .seconds(20))
        try await eventually("evicted for lag") {
            try await harness.metrics().delivery["/prices"]?.evictionsMaxLag == 1
        }
        let remaining = try await harness.metrics().connectedClients
        XCTAssertEqual(remaining, 1)
        await stalled.close()
        await reader.close()
    }

    func testABurstLargerThanTheWatermarkAndMaxQueueDoesNotEvictReadingClients() async throws {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices") { $0.settings.client.maxQueue = 16 * 1024 }]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let readers = [try await harness.client("/prices"), try await harness.client("/prices")]
        for reader in readers { _ = try await reader.waitForHead() }
        try await eventually("joined") { try await harness.metrics().connectedClients == 2 }
        // One upstream write of 48 × 8 KiB = 384 KiB: read in batches far over 64 KiB of watermark plus 16 KiB of queue.
        var burst = ByteBuffer()
        let payload = String(repeating: "b", count: 8 * 1024)
        for index in 1...48 { burst.writeString("id: \(index)\ndata: \(payload)\n\n") }
        harness.origin.broadcast(burst)
        for reader in readers {
            let events = try await reader.waitForEvents(48)
            XCTAssertEqual(events.map(\.id), (1...48).map { String($0) })
        }
        let stats = try await harness.metrics()
        XCTAssertEqual(stats.delivery["/prices"]?.evictionsMaxQueue, 0)
        XCTAssertEqual(stats.connectedClients, 2)
        for reader in readers { await reader.close() }
    }

    func testABurstWithinMaxQueueAndTheSendBufferDoesNotEvictReadingClients() async throws {
        // The default socket_send_buffer (64 KiB, 128 KiB in the kernel; the harness turns it off): a 384 KiB
        // burst in one upstream write fits max_queue (256 KiB) + NIO's 64 KiB + the kernel's 128 KiB.
        let harness = try await Harness.start(
            configure: { $0.limits.socketSendBuffer = LimitsConfig().socketSendBuffer },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices") { $0.settings.client.maxQueue = 256 * 1024 }]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let readers = [try await harness.client("/prices"), try await harness.client("/prices")]
        for reader in readers { _ = try await reader.waitForHead() }
        try await eventually("joined") { try await harness.metrics().connectedClients == 2 }
        var burst = ByteBuffer()
        let payload = String(repeating: "b", count: 8 * 1024)
        for index in 1...48 { burst.writeString("id: \(index)\ndata: \(payload)\n\n") }
        harness.origin.broadcast(burst)
        for reader in readers {
            let events = try await reader.waitForEvents(48)
            XCTAssertEqual(events.map(\.id), (1...48).map { String($0) })
        }
        let stats = try await harness.metrics()
        XCTAssertEqual(stats.delivery["/prices"]?.evictionsMaxQueue, 0)
        XCTAssertEqual(stats.connectedClients, 2)
        for reader in readers { await reader.close() }
    }

    func testKeepaliveCommentsWhileTheUpstreamIsIdle() async throws {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices") { $0.settings.keepalive = .milliseconds(100) }]
        }
        self.addTeardownBlock { await harness.stop() }
        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()
        try await client.wait("three keepalives") { $0.body.components(separatedBy: ": keepalive\n\n").count >= 4 }
        XCTAssertTrue(client.events.isEmpty, "keepalives fire no event")
        XCTAssertFalse(client.isClosed)
        let keepalives = try await harness.metrics().delivery["/prices"]?.keepalives ?? 0
        XCTAssertGreaterThanOrEqual(keepalives, 3)
        // A client that just got an event is not idle: events push the keepalive back.
        harness.origin.publish(data: "hello")
        let events = try await client.waitForEvents(1)
        XCTAssertEqual(events.first?.data, "hello")
        await client.close()
    }
}
