import NIOCore
import SSE
import SSEOrigin
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// After a restart an on-demand feed has nothing buffered: clients come back holding different last
/// ids (the drain closed them at spread moments), and the first to join sets where the upstream
/// resumes. Every client must still get every event after its own id, once.
final class RestartResumeTests: XCTestCase {
    private func start() async throws -> Harness {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices", connect: .onDemand)]
        }
        return harness
    }

    /// Waits for as many events as `expected` holds and checks their ids.
    private func expect(
        _ client: TestSSEClient,
        _ expected: [String?],
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws {
        let events = try await client.waitForEvents(expected.count, file: file, line: line)
        XCTAssertEqual(events.map(\.id), expected, file: file, line: line)
    }

    /// The ids in `range`, as the client records them.
    private func ids(_ range: ClosedRange<Int>) -> [String?] { range.map { String($0) } }

    func testNewerJoinerFirstThenOlderOnesEachGetEverythingAfterTheirOwnID() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        // The events the clients saw before the "restart", and some they missed while away.
        for index in 1...30 { harness.origin.publish(data: "event \(index)") }

        let newest = try await harness.client("/prices", headers: [("Last-Event-ID", "25")])
        let got25 = try await newest.waitForEvents(5)
        XCTAssertEqual(got25.map(\.id), self.ids(26...30))
        let older = try await harness.client("/prices", headers: [("Last-Event-ID", "12")])
        let oldest = try await harness.client("/prices", headers: [("Last-Event-ID", "3")])
        let same = try await harness.client("/prices", headers: [("Last-Event-ID", "25")])
        let middle = try await harness.client("/prices", headers: [("Last-Event-ID", "20")])
        try await self.expect(older, self.ids(13...30))
        try await self.expect(oldest, self.ids(4...30))
        try await self.expect(same, self.ids(26...30))
        try await self.expect(middle, self.ids(21...30))
        try await harness.waitUntilJoined(5)

        // Live events reach everyone once, right after what each already has.
        for index in 31...33 { harness.origin.publish(data: "event \(index)") }
        try await self.expect(newest, self.ids(26...33))
        try await self.expect(older, self.ids(13...33))
        try await self.expect(oldest, self.ids(4...33))
        try await self.expect(same, self.ids(26...33))
        try await self.expect(middle, self.ids(21...33))
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual(newest.events.count, 8, "no duplicate")
        XCTAssertEqual(oldest.events.count, 30, "no duplicate")
        for client in [newest, older, oldest, same, middle] {
            XCTAssertFalse(client.body.contains(": gap"), "no client was told of a gap")
            await client.close()
        }
    }

    /// The clients come back before the upstream has answered: the first seeds it, an older one moves
    /// the start back while the upstream is still connecting, and one between them waits for that. The
    /// one in between must be answered from a ring that holds its id (not be replayed the whole ring).
    func testClientsJoiningWhileTheUpstreamConnectsEachResumeExactly() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        for index in 1...30 { harness.origin.publish(data: "event \(index)") }
        harness.origin.responseDelay = .milliseconds(300)
        let first = try await harness.client("/prices", headers: [("Last-Event-ID", "25")])
        let older = try await harness.client("/prices", headers: [("Last-Event-ID", "12")])
        try await Task.sleep(for: .milliseconds(50))
        let between = try await harness.client("/prices", headers: [("Last-Event-ID", "28")])
        try await self.expect(first, self.ids(26...30))
        try await self.expect(older, self.ids(13...30))
        try await self.expect(between, self.ids(29...30))
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual(between.events.count, 2, "no replay of the whole ring: \(between.events.map(\.id))")
        XCTAssertFalse(between.body.contains(": gap"))
        for client in [first, older, between] { await client.close() }
    }

    /// An id the backend does not know: the rebase gives up after connect_timeout + 1 s, the client is
    /// told of a gap, and the clients already streaming get no old event and miss nothing.
    func testAnIDTheBackendDoesNotKnowEndsInAGapWithoutDisturbingOthers() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices", connect: .onDemand) {
                    $0.settings.upstream.connectTimeout = .milliseconds(300)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        for index in 1...6 { harness.origin.publish(data: "event \(index)", id: "e\(index)") }
        let known = try await harness.client("/prices", headers: [("Last-Event-ID", "e4")])
        try await self.expect(known, ["e5", "e6"])
        let unknown = try await harness.client("/prices", headers: [("Last-Event-ID", "no-such-id")])
        harness.origin.publish(data: "event 7", id: "e7")  // while the feed waits for the unknown id
        try await Task.sleep(for: .milliseconds(1500))
        harness.origin.publish(data: "event 8", id: "e8")  // while the upstream resumes from the unknown id
        let head = try await unknown.waitForHead()
        XCTAssertEqual(head.headers["Last-Event-ID"], ["e5"], "a gap: replayed from the oldest buffered event")
        harness.origin.publish(data: "event 9", id: "e9")
        try await self.expect(known, ["e5", "e6", "e7", "e8", "e9"])
        try await self.expect(unknown, ["e5", "e6", "e7", "e8", "e9"])
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual(known.events.count, 5, "nothing old or repeated: \(known.events.map(\.id))")
        XCTAssertTrue(unknown.body.contains(": gap"))
        await known.close()
        await unknown.close()
    }

    /// Opaque ids cannot be compared: an id the upstream does not send within the resume wait is taken
    /// for an older one, and the feed resumes its upstream from there.
    /// A backend that ignores Last-Event-ID (SPEC §4 promises resume only when the backend supports it):
    /// an older client's rebase gets live events back; they must reach the clients already streaming at
    /// once, not be held (or dropped) until the rebase times out, and the older client is told of a gap.
    func testABackendThatIgnoresLastEventIDNeverHoldsBackLiveEvents() async throws {
        var options = OriginServer.Options()
        options.history = 0
        let harness = try await Harness.start(origin: options) { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices", connect: .onDemand) {
                    $0.settings.upstream.connectTimeout = .seconds(3)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        for index in 1...5 { harness.origin.publish(data: "before \(index)") }  // nobody connected: lost to all
        let live = try await harness.client("/prices", headers: [("Last-Event-ID", "5")])
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        for index in 6...7 { harness.origin.publish(data: "event \(index)") }
        try await self.expect(live, self.ids(6...7))
        let older = try await harness.client("/prices", headers: [("Last-Event-ID", "2")])
        try await eventually("the rebase reconnected the upstream") {
            harness.origin.totalConnections >= 2 && harness.origin.openConnections == 1
        }
        let published = NIODeadline.now()
        for index in 8...10 { harness.origin.publish(data: "event \(index)") }
        let events = try await live.waitForEvents(5, timeout: .seconds(2))
        XCTAssertEqual(events.map(\.id), self.ids(6...10), "no live event lost or held back")
        XCTAssertLessThan(
            NIODeadline.now() - published,
            .seconds(2),
            "delivered at once, not after the rebase's 4 s timeout"
        )
        let head = try await older.waitForHead()
        try await older.wait("the older client streams") { $0.events.count >= 3 }
        XCTAssertTrue(
            older.body.contains(": gap"),
            "the events 3-5 are gone: the older client is told so; body: \(older.body.prefix(300))"
        )
        _ = head
        await live.close()
        await older.close()
    }

    /// A `connect: always` replica restarted behind a load balancer: its upstream connects with no
    /// Last-Event-ID (no client seeded it), so its ring starts live, at event 21. A client failing over
    /// with 12 must get 13-20 from the backend (the ring's first held integer id marks the joint), with
    /// no gap and no duplicate, and the clients already streaming get nothing old or twice.
    func testAnUnseededRingWithIntegerIDsMovesBackForAnOlderClient() async throws {
        let harness = try await Harness.start(
            beforeGateway: { origin in
                for index in 1...20 { origin.publish(data: "before \(index)") }  // before the replica started
            },
            feeds: { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices", connect: .always)] }
        )
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let live = try await harness.client("/prices")
        try await harness.waitUntilJoined(1)
        for index in 21...25 { harness.origin.publish(data: "event \(index)") }
        try await self.expect(live, self.ids(21...25))
        let streaming = try await harness.client("/prices", headers: [("Last-Event-ID", "23")])
        try await self.expect(streaming, self.ids(24...25))
        let older = try await harness.client("/prices", headers: [("Last-Event-ID", "12")])
        try await self.expect(older, self.ids(13...25))
        for index in 26...27 { harness.origin.publish(data: "event \(index)") }
        try await self.expect(older, self.ids(13...27))
        try await self.expect(live, self.ids(21...27))
        try await self.expect(streaming, self.ids(24...27))
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual(older.events.map(\.id), self.ids(13...27), "no duplicate")
        XCTAssertEqual(live.events.map(\.id), self.ids(21...27), "nothing old or twice")
        XCTAssertEqual(streaming.events.map(\.id), self.ids(24...27), "nothing old or twice")
        for client in [live, streaming, older] {
            XCTAssertFalse(client.body.contains(": gap"), "no gap: \(client.body.prefix(200))")
            await client.close()
        }
    }

    /// The backend goes down in the middle of the replay a rebase asked for (it sent 13 and 14, then only
    /// ends its answers): the rebase gives up, and what it collected, older than the ring's newest (25), is
    /// not sent to every client as if new; the older client is told of a gap; nothing repeats after.
    func testARebaseGivenUpInTheMiddleOfTheReplaySendsNoOldEventAsNew() async throws {
        let harness = try await Harness.start(
            beforeGateway: { origin in
                for index in 1...20 { origin.publish(data: "before \(index)") }
            },
            feeds: { origin in
                [
                    try Harness.feed("/prices", upstream: "\(origin)/prices", connect: .always) {
                        $0.settings.upstream.connectTimeout = .milliseconds(300)
                    }
                ]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let live = try await harness.client("/prices")
        try await harness.waitUntilJoined(1)
        for index in 21...25 { harness.origin.publish(data: "event \(index)") }
        try await self.expect(live, self.ids(21...25))
        harness.origin.behaviour = .streamThenEnd(bodies: [
            "id: 13\ndata: before 13\n\nid: 14\ndata: before 14\n\n", "",
        ])
        let older = try await harness.client("/prices", headers: [("Last-Event-ID", "12")])
        try await older.wait("the rebase gave up: a gap") { $0.events.count >= 5 }
        XCTAssertTrue(older.body.contains(": gap"))
        harness.origin.behaviour = .stream
        harness.origin.publish(data: "event 26")
        try await self.expect(live, self.ids(21...26))
        try await self.expect(older, self.ids(21...26))
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual(live.events.map(\.id), self.ids(21...26), "nothing old or twice")
        XCTAssertEqual(older.events.map(\.id), self.ids(21...26), "nothing old or twice")
        await live.close()
        await older.close()
    }

    /// Behind a load balancer a client fails over from a replica that is ahead, with an integer id this
    /// replica's upstream has not sent yet because it is stalled (the soak's origin stops writing to a
    /// connection until idle_timeout reconnects it). The client must wait for its id, not be answered
    /// with a gap after the 1 s resume wait: a gap replays the whole ring, all of which it already has.
    func testAnIDNewerThanAStalledUpstreamWaitsForTheReconnect() async throws {
        var options = OriginServer.Options()
        options.keepalive = .milliseconds(200)
        let harness = try await Harness.start(origin: options) { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices", connect: .always) {
                    $0.settings.upstream.idleTimeout = .milliseconds(2500)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let live = try await harness.client("/prices")
        try await harness.waitUntilJoined(1)
        for index in 1...3 { harness.origin.publish(data: "event \(index)") }
        try await self.expect(live, self.ids(1...3))
        harness.origin.behaviour = .silent
        harness.origin.closeStreams()
        try await eventually("reconnected to a stalled stream") { harness.origin.totalConnections >= 2 }
        harness.origin.behaviour = .stream  // the reconnect after idle_timeout resumes
        for index in 4...5 { harness.origin.publish(data: "event \(index)") }  // the other replica has them
        let ahead = try await harness.client("/prices", headers: [("Last-Event-ID", "5")])
        try await self.expect(live, self.ids(1...5))
        harness.origin.publish(data: "event 6")
        try await self.expect(ahead, ["6"])
        try await self.expect(live, self.ids(1...6))
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual(ahead.events.map(\.id), ["6"], "nothing it already had")
        XCTAssertFalse(ahead.body.contains(": gap"))
        await live.close()
        await ahead.close()
    }

    func testOpaqueOlderIDIsFetchedAfterTheResumeWait() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        for index in 1...6 { harness.origin.publish(data: "event \(index)", id: "e\(index)") }
        let newer = try await harness.client("/prices", headers: [("Last-Event-ID", "e5")])
        try await self.expect(newer, ["e6"])
        let older = try await harness.client("/prices", headers: [("Last-Event-ID", "e2")])
        try await self.expect(older, ["e3", "e4", "e5", "e6"])
        harness.origin.publish(data: "event 7", id: "e7")
        try await self.expect(older, ["e3", "e4", "e5", "e6", "e7"])
        try await self.expect(newer, ["e6", "e7"])
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual(newer.events.count, 2, "no duplicate")
        XCTAssertFalse(older.body.contains(": gap"))
        await newer.close()
        await older.close()
    }

    /// A backend that did not resume after the seed (the first joiner's id, sent as Last-Event-ID): its
    /// first event is 6, not 4. The clients that resumed from 3 are told of the gap before event 6 (the
    /// comment, and `event: gap` with `gap_event`); one joining later with 3 gets the gap signals at
    /// join; a client that asked for no id is told nothing. (The tests above, whose backend resumes,
    /// assert that no client sees a gap.)
    func testAnUpstreamThatDidNotResumeAfterTheSeedIsAGap() async throws {
        var options = OriginServer.Options()
        options.history = 0  // ignores Last-Event-ID
        let harness = try await Harness.start(origin: options) { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices", connect: .onDemand) {
                    $0.settings.replay.gapEvent = true
                }
            ]
        }
        defer { Task { await harness.stop() } }
        for index in 1...5 { harness.origin.publish(data: "before \(index)") }
        let first = try await harness.client("/prices", headers: [("Last-Event-ID", "3")])
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let same = try await harness.client("/prices", headers: [("Last-Event-ID", "3")])
        let fresh = try await harness.client("/prices")
        try await harness.waitUntilJoined(3)
        for index in 6...7 { harness.origin.publish(data: "event \(index)") }
        for client in [first, same] {
            try await self.expect(client, [nil, "6", "7"])  // the gap event has no id
            let gap = try XCTUnwrap(client.body.range(of: ": gap: the upstream did not resume after last event id 3"))
            let event = try XCTUnwrap(
                client.body.range(of: "event: gap\ndata: {\"lastEventId\":\"3\",\"replayFrom\":\"6\"}")
            )
            let six = try XCTUnwrap(client.body.range(of: "id: 6"))
            XCTAssertLessThan(gap.lowerBound, six.lowerBound, client.body)
            XCTAssertLessThan(event.lowerBound, six.lowerBound, client.body)
            XCTAssertEqual(client.events.filter { $0.type == "gap" }.count, 1)
        }
        try await self.expect(fresh, self.ids(6...7))
        XCTAssertFalse(fresh.body.contains("gap"), "a client that resumed from nothing lost nothing")

        let later = try await harness.client("/prices", headers: [("Last-Event-ID", "3")])
        let head = try await later.waitForHead()
        XCTAssertEqual(head.headers["Last-Event-ID"], ["6"], "a gap at join: replayed from 6")
        try await later.wait("the replay") { $0.events.filter { $0.id != nil }.count >= 2 }
        XCTAssertEqual(later.events.compactMap(\.id), self.ids(6...7).compactMap { $0 })
        XCTAssertTrue(later.body.contains(": gap"))
        for client in [first, same, fresh, later] { await client.close() }
    }

    /// The feed lets its upstream go (linger) while a rebase is still skipping the replay of what the ring
    /// holds (the backend ended the stream after 26 and then flapped). The rebase must end there: the next
    /// connection, after the ring has aged out, resumes after 30, the newest id the ring held. Before, it
    /// resumed from 26 and the rebase took 27-30, no longer held, for new events: a client that had them
    /// got them again.
    func testLingeringOutInTheMiddleOfARebaseResumesFromTheNewestHeldID() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices", connect: .onDemand) {
                    $0.linger = .milliseconds(100)
                    $0.settings.replay.maxAge = .milliseconds(1500)
                }
            ]
        }
        defer { Task { await harness.stop() } }
        for index in 1...30 { harness.origin.publish(data: "event \(index)") }
        let newer = try await harness.client("/prices", headers: [("Last-Event-ID", "25")])
        try await self.expect(newer, self.ids(26...30))
        // The rebase's connection replays 13-26 and ends; every later one ends at once.
        let partial = (13...26).map { "id: \($0)\ndata: event \($0)\n\n" }.joined()
        harness.origin.behaviour = .streamThenEnd(bodies: [partial, ""])
        let older = try await harness.client("/prices", headers: [("Last-Event-ID", "12")])
        try await self.expect(older, self.ids(13...30))
        await newer.close()
        await older.close()
        try await Task.sleep(for: .milliseconds(1600))  // the linger (0.1 s) ends, then the ring ages out

        harness.origin.behaviour = .stream
        let back = try await harness.client("/prices", headers: [("Last-Event-ID", "30")])
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        harness.origin.publish(data: "event 31")
        try await self.expect(back, ["31"])
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual(back.events.map(\.id), ["31"], "nothing the client had is sent again")
        XCTAssertEqual(
            harness.origin.requests.last?.headers.first(name: "Last-Event-ID"),
            "30",
            "resumed after the newest id the ring held"
        )
        await back.close()
    }
}

/// Many clients rejoining a fresh on-demand feed in random order with random last ids, while the
/// origin keeps ticking: each gets every event after its own id, once.
final class RestartResumeStressTests: XCTestCase {
    func testRandomRejoinOrderLosesNothing() async throws {
        var options = OriginServer.Options()
        options.rate = 100
        let harness = try await Harness.start(origin: options) { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices", connect: .onDemand)]
        }
        self.addTeardownBlock { await harness.stop() }
        try await Task.sleep(for: .milliseconds(1500))  // history the clients "saw" before the restart
        var clients: [(from: Int, client: TestSSEClient)] = []
        for _ in 0..<60 {
            let from = Int.random(in: 20...120)
            clients.append((from, try await harness.client("/prices", headers: [("Last-Event-ID", String(from))])))
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...15)))
        }
        try await Task.sleep(for: .milliseconds(1500))
        var problems: [String] = []
        for (from, client) in clients {
            let ids = client.events.compactMap { $0.id.flatMap(Int.init) }
            guard let first = ids.first else {
                problems.append("from \(from): nothing")
                continue
            }
            if first != from + 1 { problems.append("from \(from): first \(first)") }
            for (previous, next) in zip(ids, ids.dropFirst()) where next != previous + 1 {
                problems.append("from \(from): \(previous)→\(next)")
            }
        }
        XCTAssertEqual(problems, [], "upstream requests: \(harness.origin.requests.count)")
        for (_, client) in clients { await client.close() }
    }
}
