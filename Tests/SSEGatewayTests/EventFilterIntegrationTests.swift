import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// `?event=` through the running gateway: only the asked types arrive (`message` for untyped), a resume
/// has no gap and no duplicate among them, a filtered client is neither evicted for nor sent the other
/// types, over HTTP/1.1 and HTTP/2 with gzip; bad filters are a 400.
final class EventFilterIntegrationTests: XCTestCase {
    private func start(configure: @escaping (inout FeedConfig) -> Void = { _ in }) async throws -> Harness {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices", configure: configure)]
        }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        return harness
    }

    /// Publishes ids `range` with types cycling price, trade, untyped, news, and waits until the gateway has them.
    private func publishMixed(_ harness: Harness, _ range: ClosedRange<Int>) async throws {
        let types: [String?] = ["price", "trade", nil, "news"]
        for index in range {
            harness.origin.publish(data: "event \(index)", type: types[(index - 1) % 4], id: String(index))
        }
        try await eventually("gateway received \(range.upperBound)") {
            try await harness.metrics().feeds.first?.lastEventID == String(range.upperBound)
        }
    }

    func testOnlyTheAskedTypesArriveAndResumingHasNoGapAndNoDuplicate() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let client = try await harness.client("/prices?event=price&event=message")
        _ = try await client.waitForHead()
        try await harness.waitUntilJoined(1)
        try await self.publishMixed(harness, 1...8)
        let first = try await client.waitForEvents(4)
        XCTAssertEqual(first.map(\.id), ["1", "3", "5", "7"])
        XCTAssertEqual(first.map(\.type), ["price", nil, "price", nil], "message is the untyped events")
        await client.close()

        // Missed while away: 9...16; the resume gets exactly its types after 7, then live ones.
        try await self.publishMixed(harness, 9...16)
        let resumed = try await harness.client(
            "/prices?event=price&event=message",
            headers: [("Last-Event-ID", "7")]
        )
        let head = try await resumed.waitForHead()
        XCTAssertTrue(head.headers["Last-Event-ID"].isEmpty, "no gap")
        _ = try await resumed.waitForEvents(4)
        try await self.publishMixed(harness, 17...20)
        let all = try await resumed.waitForEvents(6)
        XCTAssertEqual(all.map(\.id), ["9", "11", "13", "15", "17", "19"])
        XCTAssertFalse(resumed.body.contains("gap"), resumed.body)
        try await Task.sleep(nanoseconds: 50_000_000)
        XCTAssertEqual(resumed.events.count, 6, "nothing more, nothing twice")
        await resumed.close()
    }

    /// Two stalled clients and 3.2 MiB of `trade` events: the unfiltered one is evicted over `max_queue`,
    /// the one that asked for `price` has nothing queued and stays; a reading `price` client gets only price.
    func testAFilteredClientIsNotEvictedForOtherTypesAndDoesNotGetThem() async throws {
        let harness = try await self.start {
            $0.settings.client.maxQueue = 64 * 1024
            $0.settings.client.maxLag = .seconds(30)
            $0.settings.replay.maxEvents = 10
        }
        self.addTeardownBlock { await harness.stop() }
        let stalledAll = try await harness.client("/prices", receiveBuffer: 4096, reading: false)
        let stalledPrice = try await harness.client("/prices?event=price", receiveBuffer: 4096, reading: false)
        let price = try await harness.client("/prices?event=price")
        let reader = try await harness.client("/prices", recordBody: false)
        _ = try await price.waitForHead()
        _ = try await reader.waitForHead()
        try await harness.waitUntilJoined(4)

        let payload = String(repeating: "t", count: 8 * 1024)
        let total = 400
        for index in 1...total {
            harness.origin.publish(data: "\(index) \(payload)", type: "trade")
            if index % 10 == 0 { try await Task.sleep(nanoseconds: 5_000_000) }
        }
        harness.origin.publish(data: "the price", type: "price")
        _ = try await reader.waitForEvents(total + 1, timeout: .seconds(20))
        try await eventually("the unfiltered stalled client evicted") {
            try await harness.metrics().delivery["/prices"]?.evictionsMaxQueue == 1
        }
        let events = try await price.waitForEvents(1)
        XCTAssertEqual(events.map(\.data), ["the price"])
        let snapshot = try await harness.metrics()
        XCTAssertEqual(snapshot.clientsPerFeed["/prices"], 3, "the stalled price client is still there")
        XCTAssertEqual(snapshot.delivery["/prices"]?.evictionsMaxLag, 0)
        XCTAssertEqual(price.events.count, 1)
        for client in [stalledAll, stalledPrice, price] { await client.close() }
        await reader.close()
    }

    func testHTTP2WithGzipDeliversOnlyTheAskedTypes() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let connection = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup, tls: nil)
        let trades = try await connection.request(
            "/prices?event=trade&event=news",
            headers: [("accept-encoding", "gzip")],
            gunzip: true
        )
        let untyped = try await connection.request("/prices?event=message", gunzip: false)
        let head = try await trades.waitForHeaders()
        XCTAssertEqual(head.header("content-encoding"), ["gzip"])
        try await harness.waitUntilJoined(2)
        try await self.publishMixed(harness, 1...12)
        let got = try await trades.waitForEvents(6, timeout: .seconds(5))
        XCTAssertEqual(got.map(\.id), ["2", "4", "6", "8", "10", "12"])
        XCTAssertEqual(got.map(\.type), ["trade", "news", "trade", "news", "trade", "news"])
        let plain = try await untyped.waitForEvents(3, timeout: .seconds(5))
        XCTAssertEqual(plain.map(\.id), ["3", "7", "11"])
        await connection.close()
    }

    func testBadFiltersAre400WithTheReason() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let many = (0...EventFilter.maxTypes).map { "event=type\($0)" }.joined(separator: "&")
        let tooMany = try await harness.client("/prices?\(many)")
        let head = try await tooMany.waitForHead()
        XCTAssertEqual(head.status, .badRequest)
        try await eventually("the reason in the body: \(tooMany.body)") {
            tooMany.body == "bad request: at most 32 event types may be asked for with ?event=\n"
        }
        let long = try await harness.client("/prices?event=\(String(repeating: "x", count: 129))")
        let longHead = try await long.waitForHead()
        XCTAssertEqual(longHead.status, .badRequest)
        XCTAssertEqual(longHead.headers["Content-Type"], ["text/plain; charset=utf-8"], "not an event stream")
        let metrics = try await harness.metrics()
        XCTAssertEqual(metrics.connectedClients, 0)
        await tooMany.close()
        await long.close()
    }
}
