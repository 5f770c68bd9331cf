import NIOCore
import NIOPosix
import SSE
import SSEOrigin
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// `GET /multi?feed=/a&feed=/b` through the real gateway: feed `/a` on the harness's origin, feed `/b` on a
/// second origin, so each can publish on its own.
final class MultiFeedTests: XCTestCase {
    var originB: OriginServer!
    private var groupB: MultiThreadedEventLoopGroup!

    func start(
        configureA: @escaping (inout FeedConfig) -> Void = { _ in },
        configureB: @escaping (inout FeedConfig) -> Void = { _ in },
        configure: @escaping (inout GatewayConfig) -> Void = { _ in }
    ) async throws -> Harness {
        let groupB = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let originB = OriginServer(options: OriginServer.Options(), group: groupB)
        try await originB.start()
        self.originB = originB
        self.groupB = groupB
        let portB = originB.port
        let harness = try await Harness.start(configure: configure) { origin in
            [
                try Harness.feed("/a", upstream: "\(origin)/a", configure: configureA),
                try Harness.feed("/b", upstream: "http://127.0.0.1:\(portB)/b", configure: configureB),
            ]
        }
        self.addTeardownBlock {
            await harness.stop()
            try? await originB.stop()
            try? await groupB.shutdownGracefully()
        }
        try await eventually("upstreams connected") {
            harness.origin.openConnections == 1 && originB.openConnections == 1
        }
        return harness
    }

    /// Publishes on `/a` (the harness's origin) or `/b` and waits until the gateway holds the last one.
    func publish(
        _ harness: Harness,
        _ feed: String,
        _ range: ClosedRange<Int>,
        type: String? = nil
    ) async throws {
        let origin = feed == "/a" ? harness.origin : self.originB!
        for index in range { origin.publish(data: "\(feed) \(index)", type: type, id: String(index)) }
        try await eventually("gateway received \(feed) \(range.upperBound)") {
            try await harness.metrics().feeds.first(where: { $0.path == feed })?.lastEventID
                == String(range.upperBound)
        }
    }

    func waitUntilJoinedBoth(_ harness: Harness, _ count: Int = 1) async throws {
        try await eventually("joined /a and /b") {
            let clients = try await harness.metrics().clientsPerFeed
            return clients["/a"] == count && clients["/b"] == count
        }
    }

    func testEventsOfBothFeedsArriveWithTheirTypesInOrderPerFeedWithCompositeIDs() async throws {
        let harness = try await self.start()
        let client = try await harness.client("/multi?feed=/a&feed=/b")
        let head = try await client.waitForHead()
        XCTAssertEqual(head.status, .ok)
        XCTAssertEqual(head.headers.first(name: "Content-Type"), "text/event-stream; charset=utf-8")
        try await self.waitUntilJoinedBoth(harness)
        try await self.publish(harness, "/a", 1...3, type: "price")
        try await self.publish(harness, "/b", 1...2, type: "trade")
        try await self.publish(harness, "/a", 4...4, type: "price")
        let events = try await client.waitForEvents(6)
        XCTAssertEqual(events.filter { $0.type == "price" }.map(\.data), ["/a 1", "/a 2", "/a 3", "/a 4"])
        XCTAssertEqual(events.filter { $0.type == "trade" }.map(\.data), ["/b 1", "/b 2"])
        XCTAssertEqual(events.map(\.id), ["m1:1,", "m1:2,", "m1:3,", "m1:3,1", "m1:3,2", "m1:4,2"])
        await client.close()
    }

    func testOneLastEventIDResumesEveryFeedWithoutGapOrDuplicate() async throws {
        let harness = try await self.start()
        try await self.publish(harness, "/a", 1...5)
        try await self.publish(harness, "/b", 1...3)
        // As a browser that saw /a up to 3 and /b up to 1 reconnects.
        let client = try await harness.client("/multi?feed=/a&feed=/b", headers: [("Last-Event-ID", "m1:3,1")])
        let replay = try await client.waitForEvents(4)
        XCTAssertEqual(replay.map(\.data), ["/a 4", "/a 5", "/b 2", "/b 3"])
        XCTAssertEqual(replay.last?.id, "m1:5,3", client.body)
        XCTAssertFalse(client.body.contains(": gap"), client.body)
        try await self.waitUntilJoinedBoth(harness)
        try await self.publish(harness, "/b", 4...4)
        let all = try await client.waitForEvents(5)
        XCTAssertEqual(all.last?.data, "/b 4")
        XCTAssertEqual(all.last?.id, "m1:5,4")
        await client.close()

        // A foreign id (a plain feed's) is no resume id: live only.
        let foreign = try await harness.client("/multi?feed=/a&feed=/b", headers: [("Last-Event-ID", "2")])
        _ = try await foreign.waitForHead()
        try await self.waitUntilJoinedBoth(harness)
        try await self.publish(harness, "/a", 6...6)
        let live = try await foreign.waitForEvents(1)
        XCTAssertEqual(live.map(\.data), ["/a 6"])
        XCTAssertEqual(live.map(\.id), ["m1:6,"])
        await foreign.close()
    }

    func testAGapOnOneFeedNamesThatFeed() async throws {
        let harness = try await self.start(configureA: {
            $0.settings.replay.maxEvents = 2
            $0.settings.replay.gapEvent = true
        })
        try await self.publish(harness, "/a", 1...5)
        try await self.publish(harness, "/b", 1...2)
        let client = try await harness.client("/multi?feed=/a&feed=/b", headers: [("Last-Event-ID", "m1:1,1")])
        let events = try await client.waitForEvents(4)
        XCTAssertTrue(client.body.contains(": gap /a: last event id 1 is not buffered; replaying from 4"), client.body)
        XCTAssertFalse(client.body.contains("gap /b"), client.body)
        XCTAssertEqual(events.first?.type, "gap")
        XCTAssertEqual(events.first?.data, "{\"feed\":\"/a\",\"lastEventId\":\"1\",\"replayFrom\":\"4\"}")
        XCTAssertEqual(events.dropFirst().map(\.data), ["/a 4", "/a 5", "/b 2"])
        await client.close()
    }

    func testRefusalsNameWhatIsWrong() async throws {
        let harness = try await self.start(configure: {
            $0.limits.multi.maxFeeds = 2
            $0.limits.maxHeaderBytes = 1024
        })
        let cases: [(String, [(String, String)], Int, String)] = [
            ("/multi?feed=/a&feed=/nope", [], 404, "not found: feed /nope"),
            ("/multi?feed=/a&feed=/a", [], 400, "feed /a is requested twice"),
            ("/multi?feed=/a&feed=/b&feed=/c", [], 400, "too many feeds: 3 requested, multi.max_feeds allows 2"),
            ("/multi", [], 400, "name at least one feed"),
            ("/multi?transport=poll", [], 400, "name at least one feed"),
            ("/multi?feed=/a&feed=/b&event=a%0Ab", [], 400, "an event type in ?event= contains a line break"),
            (
                "/multi?feed=/a&feed=/b", [("Last-Event-ID", "m1:" + String(repeating: "7", count: 600) + ",1")],
                400, "composite event id of 2 feeds is 605 bytes, over the limit of 512",
            ),
        ]
        for (path, headers, status, text) in cases {
            let client = try await harness.client(path, headers: headers)
            let head = try await client.waitForHead()
            XCTAssertEqual(Int(head.status.code), status, path)
            try await eventually("body of \(path)") { client.body.contains(text) }
            await client.close()
        }
        let clients0 = try await harness.metrics().connectedClients
        XCTAssertEqual(clients0, 0)
    }

    func testReplayThatWouldPassTheIDBoundIsRefused() async throws {
        let harness = try await self.start(configure: { $0.limits.maxHeaderBytes = 1024 })
        let long = String(repeating: "x", count: 300)
        harness.origin.publish(data: "a", id: "\(long)1")
        harness.origin.publish(data: "a", id: "\(long)2")
        self.originB.publish(data: "b", id: "\(long)3")
        self.originB.publish(data: "b", id: "\(long)4")
        try await eventually("gateway received both") {
            let feeds = try await harness.metrics().feeds
            return feeds.first(where: { $0.path == "/a" })?.lastEventID == "\(long)2"
                && feeds.first(where: { $0.path == "/b" })?.lastEventID == "\(long)4"
        }
        let resume = CompositeID(ids: ["\(long)1", "\(long)3"]).encoded
        let client = try await harness.client("/multi?feed=/a&feed=/b", headers: [("Last-Event-ID", resume)])
        let head = try await client.waitForHead()
        XCTAssertEqual(head.status, .badRequest)
        try await eventually("explained") { client.body.contains("over the limit of 512") }
        let clients0 = try await harness.metrics().connectedClients
        XCTAssertEqual(clients0, 0)
        try await eventually("no client left in the fan-out") { try await harness.joinedClients() == 0 }
    }

    func testEachFeedTakesAClientSlot() async throws {
        let harness = try await self.start(configure: { $0.limits.maxClients = 3 })
        let first = try await harness.client("/multi?feed=/a&feed=/b")
        _ = try await first.waitForHead()
        let clients2 = try await harness.metrics().connectedClients
        XCTAssertEqual(clients2, 2)
        let second = try await harness.client("/multi?feed=/a&feed=/b")
        let refused = try await second.waitForHead()
        XCTAssertEqual(refused.status, .serviceUnavailable)
        await first.close()
        try await eventually("slots released") { try await harness.metrics().connectedClients == 0 }
        await second.close()
    }

    func testHTTP2AndGzipCarryTheCompositeIDs() async throws {
        let harness = try await self.start()
        try await self.publish(harness, "/a", 1...2, type: "price")
        try await self.publish(harness, "/b", 1...1, type: "trade")
        let h2 = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        let stream = try await h2.request("/multi?feed=/a&feed=/b", headers: [("last-event-id", "m1:1,")])
        let gzipped = try await h2.request(
            "/multi?feed=/a&feed=/b",
            headers: [("last-event-id", "m1:1,"), ("accept-encoding", "gzip")],
            gunzip: true
        )
        let http1Gzip = try await harness.client(
            "/multi?feed=/a&feed=/b",
            headers: [("Last-Event-ID", "m1:1,"), ("Accept-Encoding", "gzip")],
            gunzip: true
        )
        for events in [
            try await stream.waitForEvents(1), try await gzipped.waitForEvents(1),
            try await http1Gzip.waitForEvents(1),
        ] {
            XCTAssertEqual(events.map(\.data), ["/a 2"])
            XCTAssertEqual(events.map(\.id), ["m1:2,"])
            XCTAssertEqual(events.map(\.type), ["price"])
        }
        let gzipHeaders = try await gzipped.waitForHeaders()
        XCTAssertEqual(gzipHeaders.header("content-encoding"), ["gzip"])
        try await self.waitUntilJoinedBoth(harness, 3)
        try await self.publish(harness, "/b", 2...2, type: "trade")
        for events in [
            try await stream.waitForEvents(2), try await gzipped.waitForEvents(2),
            try await http1Gzip.waitForEvents(2),
        ] {
            XCTAssertEqual(events.last?.data, "/b 2")
            XCTAssertEqual(events.last?.id, "m1:2,2")
            XCTAssertEqual(events.last?.type, "trade")
        }
        await h2.close()
        await http1Gzip.close()
        try await eventually("slots released") { try await harness.metrics().connectedClients == 0 }
    }

    func testEveryFeedsGateMustAdmitTheRequest() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start(configureB: { $0.settings.auth = fixture.auth(.jwt) })
        let path = "/multi?feed=/a&feed=/b"
        let anonymous = try await harness.client(path)
        let refused = try await anonymous.waitForHead()
        try await anonymous.waitForClose()
        XCTAssertEqual(refused.status, .unauthorized)
        XCTAssertEqual(refused.headers.first(name: "Content-Type"), "application/json")
        XCTAssertFalse(anonymous.body.contains("retry:"), anonymous.body)

        let onlyA = try await fixture.token(feeds: ["/a"])
        let forbidden = try await harness.client(path, headers: [("Authorization", "Bearer \(onlyA)")])
        let forbiddenHead = try await forbidden.waitForHead()
        XCTAssertEqual(forbiddenHead.status, .forbidden)
        try await forbidden.waitForClose()
        try await eventually("no slot held by refusals") { try await harness.metrics().connectedClients == 0 }

        let bothToken = try await fixture.token(feeds: ["/b"])
        let allowed = try await harness.client(path, headers: [("Authorization", "Bearer \(bothToken)")])
        let allowedHead = try await allowed.waitForHead()
        XCTAssertEqual(allowedHead.status, .ok)
        try await self.waitUntilJoinedBoth(harness)
        try await self.publish(harness, "/b", 1...1)
        let events = try await allowed.waitForEvents(1)
        XCTAssertEqual(events.map(\.id), ["m1:,1"])
        await allowed.close()
    }
}
