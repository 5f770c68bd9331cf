import NIOCore
import NIOHTTP1
import SSE
import XCTest

@testable import SSEGateway

/// `?event=` filters without sockets: parsing the query, the shard skipping what a client did not ask for
/// (shared buffers, `lastSequence` moving on), id-only blocks and notices reaching it anyway, and the
/// replay at join honouring the filter.
final class EventFilterTests: XCTestCase {
    // MARK: Parsing

    func testQueryValuesAreRepeatedPercentDecodedAndEmptyMeansMessage() throws {
        XCTAssertNil(try EventFilter(query: ""))
        XCTAssertNil(try EventFilter(query: "lastEventId=3&events=x&eventx=y"))
        XCTAssertEqual(try EventFilter(query: "event=price&event=trade")?.types, ["price", "trade"])
        XCTAssertEqual(try EventFilter(query: "a=1&event=price&b=2&event=price")?.types, ["price"], "each type once")
        XCTAssertEqual(
            try EventFilter(query: "event=order%20book&event=a+b&event=%C3%A9t%C3%A9")?.types,
            [
                "order book", "a b", "été",
            ]
        )
        XCTAssertEqual(try EventFilter(query: "event=&event")?.types, ["message"], "an empty type is message")
        XCTAssertEqual(try EventFilter(query: "event=100%")?.types, ["100%"], "a malformed escape is kept as written")
    }

    func testTooManyTypesTooLongATypeOrALineBreakAreRefused() {
        let many = (0...EventFilter.maxTypes).map { "event=t\($0)" }.joined(separator: "&")
        XCTAssertThrowsError(try EventFilter(query: Substring(many))) { error in
            XCTAssertEqual(
                (error as? EventFilter.Refusal)?.message,
                "at most 32 event types may be asked for with ?event="
            )
        }
        let exactly = (1...EventFilter.maxTypes).map { "event=t\($0)" }.joined(separator: "&")
        XCTAssertEqual(try EventFilter(query: Substring(exactly + "&event=t1"))?.types.count, 32, "32 is allowed")
        let long = String(repeating: "x", count: EventFilter.maxTypeLength + 1)
        XCTAssertThrowsError(try EventFilter(query: Substring("event=\(long)")))
        XCTAssertEqual(
            try EventFilter(query: Substring("event=\(long.dropLast())"))?.types.first?.utf8.count,
            EventFilter.maxTypeLength
        )
        XCTAssertThrowsError(try EventFilter(query: "event=a%0Ab"))
    }

    func testTheRouterAnswers400WithTheReason() throws {
        let gateway = try self.gateway()
        let router = RequestRouter(registry: gateway.context.registry)
        let many = (0...EventFilter.maxTypes).map { "event=t\($0)" }.joined(separator: "&")
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/prices?\(many)")
        head.headers.add(name: "Host", value: "gateway")
        guard case .respond(let response, let body, _) = router.route(head) else {
            return XCTFail("a stream for \(many.count) bytes of event types")
        }
        XCTAssertEqual(response.status, .badRequest)
        XCTAssertEqual(body, "bad request: at most 32 event types may be asked for with ?event=\n")
        let request = gateway.streamRequest("/prices?event=price&event=trade")
        XCTAssertEqual(request.eventFilter?.types, ["price", "trade"])
        XCTAssertNil(gateway.streamRequest("/prices").eventFilter)
    }

    // MARK: Delivery

    private func gateway(configure: (inout FeedConfig) -> Void = { _ in }) throws -> EmbeddedGateway {
        EmbeddedGateway(feeds: [try EmbeddedGateway.feed("/prices", configure: configure)])
    }

    private func join(
        _ gateway: EmbeddedGateway,
        _ path: String,
        headers: [(String, String)] = []
    ) throws -> (StreamSession, RecordingTransport) {
        let transport = RecordingTransport(framing: .raw)
        let session = try XCTUnwrap(
            StreamSession.admit(
                gateway.streamRequest(path, headers: headers),
                gateway: gateway.context,
                transport: transport,
                loop: gateway.loop
            )
        )
        session.begin()
        gateway.loop.run()
        return (session, transport)
    }

    /// Ids 1… with types cycling through price, trade, untyped (message) and news.
    private static func mixed(_ ids: ClosedRange<Int>) -> [ServerSentEvent] {
        let types: [String?] = ["price", "trade", nil, "news"]
        return ids.map { ServerSentEvent(id: "\($0)", type: types[($0 - 1) % 4], data: "event \($0)") }
    }

    private static func events(_ transport: RecordingTransport) -> [ServerSentEvent] {
        var parser = SSEParser()
        var buffer = transport.written
        var events: [ServerSentEvent] = []
        try? parser.parse(&buffer) { output in
            if case .event(let event) = output { events.append(event) }
        }
        return events
    }

    func testAFilteredClientGetsOnlyItsTypesAndAnUnfilteredOneEverything() throws {
        let gateway = try self.gateway()
        let (_, filtered) = try self.join(gateway, "/prices?event=price&event=message")
        let (_, everything) = try self.join(gateway, "/prices")
        gateway.publish("/prices", Self.mixed(1...8))
        XCTAssertEqual(Self.events(filtered).map(\.id), ["1", "3", "5", "7"])
        XCTAssertEqual(Self.events(filtered).map(\.type), ["price", nil, "price", nil])
        XCTAssertEqual(Self.events(everything).map(\.id), (1...8).map(String.init))
        XCTAssertEqual(gateway.stats("/prices").deliveries, 4 + 8, "skipped events are not deliveries")
    }

    func testASkippedEventStillMovesTheClientPastIt() throws {
        let gateway = try self.gateway()
        let (_, filtered) = try self.join(gateway, "/prices?event=trade")
        gateway.publish("/prices", Self.mixed(1...3))
        gateway.publish("/prices", Self.mixed(4...6))
        XCTAssertEqual(Self.events(filtered).map(\.id), ["2", "6"])
        let subscriber = try XCTUnwrap(gateway.hub.shardsForDrain.first?.subscribers.first)
        XCTAssertEqual(subscriber.lastSequence, 6, "past the events it skipped too")
    }

    /// Id-only blocks reach a filtered client (its browser's resume position moves past what it skipped);
    /// so do the gateway's own notices.
    func testIDOnlyBlocksAndKeepalivesReachAFilteredClient() throws {
        let gateway = try self.gateway()
        let (_, filtered) = try self.join(gateway, "/prices?event=price")
        gateway.publish(
            "/prices",
            [
                ServerSentEvent(id: "1", type: "trade", data: "t"),
                ServerSentEvent(id: "2", data: nil),
                ServerSentEvent(id: "3", type: "price", data: "p"),
            ]
        )
        XCTAssertEqual(
            Self.events(filtered),
            [ServerSentEvent(id: "2", data: nil), ServerSentEvent(id: "3", type: "price", data: "p")]
        )
        let before = filtered.text
        gateway.hub.shardsForDrain.first?.tick(now: .now() + .seconds(3600)) { _ in ByteBuffer(string: ": ka\n\n") }
        XCTAssertEqual(String(filtered.text.dropFirst(before.count)), ": ka\n\n", "keepalives are not filtered")
    }

    /// An idle filtered client that skipped events gets an id-only block naming the newest of them in place
    /// of a keepalive (once), so its browser resumes after the run it skipped: no replay of it, and no gap
    /// once the run has outgrown the ring.
    func testAnIdleFilteredClientIsToldTheNewestIDItSkipped() throws {
        let gateway = try self.gateway { $0.settings.replay.maxEvents = 4 }
        let (_, filtered) = try self.join(gateway, "/prices?event=price")
        let (_, everything) = try self.join(gateway, "/prices")
        gateway.publish("/prices", (1...12).map { ServerSentEvent(id: "\($0)", type: "trade", data: "t") })
        let shard = try XCTUnwrap(gateway.hub.shardsForDrain.first)
        let keepalive = { (_: StreamFraming) in ByteBuffer(string: ": ka\n\n") }
        var before = (filtered.text, everything.text)
        shard.tick(now: .now() + .seconds(3600), keepalive: keepalive)
        XCTAssertEqual(String(filtered.text.dropFirst(before.0.count)), "id: 12\n\n")
        XCTAssertEqual(String(everything.text.dropFirst(before.1.count)), ": ka\n\n", "an unfiltered client has the id")
        before = (filtered.text, everything.text)
        shard.tick(now: .now() + .seconds(7200), keepalive: keepalive)
        XCTAssertEqual(String(filtered.text.dropFirst(before.0.count)), ": ka\n\n", "once per id, not per keepalive")

        // Its browser's Last-Event-ID is now 12: a resume replays nothing and reports no gap.
        let (_, resumed) = try self.join(gateway, "/prices?event=price", headers: [("Last-Event-ID", "12")])
        XCTAssertFalse(resumed.text.contains("gap"), resumed.text)
        gateway.publish("/prices", [ServerSentEvent(id: "13", type: "price", data: "p")])
        XCTAssertEqual(Self.events(resumed).map(\.id), ["13"])
        // A delivered event with an id is its position: no mark after it.
        before = (filtered.text, everything.text)
        shard.tick(now: .now() + .seconds(10800), keepalive: keepalive)
        XCTAssertEqual(String(filtered.text.dropFirst(before.0.count)), ": ka\n\n")
    }

    /// A resume replays only the client's types after its id, then live ones: no gap, no duplicate.
    func testAResumeReplaysOnlyTheClientsTypesAfterItsID() throws {
        let gateway = try self.gateway()
        gateway.publish("/prices", Self.mixed(1...10))
        // 5 is the client's own type (price); 6 (trade) is another type's id, as an id-only block leaves it.
        let (_, own) = try self.join(gateway, "/prices?event=price", headers: [("Last-Event-ID", "5")])
        let (_, other) = try self.join(gateway, "/prices?event=price", headers: [("Last-Event-ID", "6")])
        XCTAssertEqual(Self.events(own).map(\.id), ["9"])
        XCTAssertEqual(Self.events(other).map(\.id), ["9"])
        XCTAssertFalse(own.text.contains("gap"), own.text)
        gateway.publish("/prices", Self.mixed(11...14))
        XCTAssertEqual(Self.events(own).map(\.id), ["9", "13"])
        XCTAssertEqual(Self.events(other).map(\.id), ["9", "13"])
    }

    /// A resume from an id no longer buffered still says so, filtered or not.
    func testAGapAtJoinIsSignalledToAFilteredClient() throws {
        let gateway = try self.gateway { $0.settings.replay.maxEvents = 4 }
        gateway.publish("/prices", Self.mixed(1...12))
        let (_, filtered) = try self.join(gateway, "/prices?event=price", headers: [("Last-Event-ID", "2")])
        XCTAssertTrue(filtered.text.contains(": gap: last event id 2 is not buffered; replaying from 9"), filtered.text)
        XCTAssertEqual(Self.events(filtered).map(\.id), ["9"])
    }
}
