import NIOCore
import NIOPosix
import SSE
import SSEOrigin
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// The upstream side (SPEC §4) seen from outside: a misbehaving origin makes the gateway retry with
/// backoff, never fails the connected clients, and resumes with `Last-Event-ID` so nothing is lost.
final class UpstreamFailureTests: XCTestCase {
    func testNon2xxIsRetriedAndClientsStayConnected() async throws {
        try await self.checkRetriesThenRecovers(.status(500))
    }

    func testWrongContentTypeIsRetriedAndClientsStayConnected() async throws {
        try await self.checkRetriesThenRecovers(.wrongContentType)
    }

    /// The origin misbehaves; the gateway keeps trying, a client stays connected with a 200 and gets the
    /// events published once the origin streams again.
    private func checkRetriesThenRecovers(
        _ behaviour: OriginServer.Behaviour,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected", file: file, line: line) { harness.origin.openConnections == 1 }
        harness.origin.behaviour = behaviour
        harness.origin.closeStreams()

        let client = try await harness.client("/prices")
        let head = try await client.waitForHead(file: file, line: line)
        XCTAssertEqual(head.status, .ok, file: file, line: line)
        XCTAssertEqual(head.headers["Content-Type"], ["text/event-stream; charset=utf-8"], file: file, line: line)

        let before = harness.origin.requests.count
        try await eventually("several failed attempts", timeout: .seconds(5), file: file, line: line) {
            harness.origin.requests.count >= before + 4
        }
        XCTAssertEqual(harness.origin.openConnections, 0, "a failing origin has no stream open", file: file, line: line)
        XCTAssertFalse(client.isClosed, "an upstream failure must not close the clients", file: file, line: line)
        XCTAssertEqual(client.events.count, 0, file: file, line: line)

        harness.origin.behaviour = .stream
        try await eventually("upstream back", timeout: .seconds(3), file: file, line: line) {
            harness.origin.openConnections == 1
        }
        harness.origin.publish(data: "back again")
        let events = try await client.waitForEvents(1, file: file, line: line)
        XCTAssertEqual(events.map(\.data), ["back again"], file: file, line: line)
        XCTAssertFalse(client.isClosed, file: file, line: line)
        // Still one upstream stream, not one per attempt.
        try await Task.sleep(nanoseconds: 100_000_000)
        XCTAssertEqual(harness.origin.openConnections, 1, file: file, line: line)
        await client.close()
    }

    func testNoContentIsRetriedOnlyAtMaximumBackoff() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.upstream.backoffInitial = .milliseconds(20)
                    $0.settings.upstream.backoffMax = .milliseconds(300)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        harness.origin.behaviour = .status(204)
        let before = harness.origin.requests.count
        harness.origin.closeStreams()

        // Record when each new attempt arrives (polling every few ms).
        var times: [NIODeadline] = []
        var seen = before
        let deadline = NIODeadline.now() + .seconds(4)
        while times.count < 4, NIODeadline.now() < deadline {
            let count = harness.origin.requests.count
            if count > seen {
                for _ in seen..<count { times.append(.now()) }
                seen = count
            }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        XCTAssertEqual(times.count, 4, "expected 4 attempts after the 204s")
        // times[0] is the first reconnect (answered 204); every later attempt waits the maximum backoff.
        for index in 1..<times.count {
            let gap = (times[index] - times[index - 1]).nanoseconds / 1_000_000
            XCTAssertGreaterThanOrEqual(
                gap,
                250,
                "attempt \(index) came \(gap) ms after a 204; expected the 300 ms maximum backoff"
            )
            // Far above the 300 ms cap for a loaded machine, far below an uncapped backoff.
            XCTAssertLessThan(gap, 2000, "attempt \(index) came \(gap) ms after a 204")
        }
        XCTAssertEqual(harness.origin.openConnections, 0)
    }

    func testIdleTimeoutReconnectsAndCommentsKeepTheStreamAlive() async throws {
        var options = OriginServer.Options()
        options.keepalive = .milliseconds(50)  // ": ping" comments on open streams
        let harness = try await Harness.start(origin: options) { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.upstream.idleTimeout = .milliseconds(250)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()

        // Comments are bytes: a stream with pings every 50 ms is never idle.
        let steady = harness.origin.totalConnections
        try await Task.sleep(nanoseconds: 600_000_000)
        XCTAssertEqual(
            harness.origin.totalConnections,
            steady,
            "a stream with comments every 50 ms must not hit the 250 ms idle timeout"
        )

        // A silent origin: headers, then nothing. The gateway gives up after 250 ms each time.
        harness.origin.behaviour = .silent
        let before = harness.origin.requests.count
        let started = NIODeadline.now()
        harness.origin.closeStreams()
        try await eventually("reconnects after idle timeouts", timeout: .seconds(5)) {
            harness.origin.requests.count >= before + 4
        }
        let elapsed = (NIODeadline.now() - started).nanoseconds / 1_000_000
        // Four attempts, three of which waited out a 250 ms idle timeout.
        XCTAssertGreaterThanOrEqual(elapsed, 700, "reconnected before the idle timeout passed (\(elapsed) ms)")
        XCTAssertFalse(client.isClosed)

        harness.origin.behaviour = .stream
        try await eventually("streaming again", timeout: .seconds(3)) { harness.origin.openConnections == 1 }
        harness.origin.publish(data: "after silence")
        let events = try await client.waitForEvents(1)
        XCTAssertEqual(events.map(\.data), ["after silence"])
        await client.close()
    }

    func testOversizedEventDropsConnectionAndLaterEventsArrive() async throws {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices") { $0.settings.upstream.maxEventSize = 1024 }]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()
        try await eventually("client joined") { try await harness.joinedClients() == 1 }

        harness.origin.publish(data: "small 1")
        _ = try await client.waitForEvents(1)
        XCTAssertEqual(harness.origin.totalConnections, 1)

        // 4 KiB in one data line, not in the origin's history (so the resume does not replay it).
        harness.origin.broadcast(ByteBuffer(string: "data: " + String(repeating: "x", count: 4096) + "\n\n"))
        try await eventually("reconnected after the oversized event", timeout: .seconds(3)) {
            harness.origin.totalConnections == 2 && harness.origin.openConnections == 1
        }
        // The reconnect resumes after the last good event.
        XCTAssertEqual(harness.origin.requests.last?.headers["Last-Event-ID"], ["1"])

        harness.origin.publish(data: "small 2")
        harness.origin.publish(data: String(repeating: "y", count: 900))  // under the limit
        let events = try await client.waitForEvents(3)
        XCTAssertEqual(events.map(\.data), ["small 1", "small 2", String(repeating: "y", count: 900)])
        XCTAssertEqual(events.map(\.id), ["1", "2", "3"])
        XCTAssertFalse(client.body.contains("xxxxxxxx"), "the oversized event must not reach clients")
        XCTAssertFalse(client.isClosed)

        // An oversized event split over several reads is cut off as well (a line without its end).
        harness.origin.broadcast(ByteBuffer(string: "data: " + String(repeating: "z", count: 800)))
        harness.origin.broadcast(ByteBuffer(string: String(repeating: "z", count: 800)))
        try await eventually("reconnected after the oversized line", timeout: .seconds(3)) {
            harness.origin.totalConnections == 3 && harness.origin.openConnections == 1
        }
        harness.origin.publish(data: "small 4")
        let more = try await client.waitForEvents(4)
        XCTAssertEqual(more.last?.data, "small 4")
        XCTAssertEqual(more.count, 4)
        await client.close()
    }

    func testClosedStreamResumesWithLastEventIDWithoutGapOrDuplicate() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        XCTAssertEqual(
            harness.origin.requests.first?.headers["Last-Event-ID"],
            [],
            "the first request has no resume id"
        )
        XCTAssertEqual(harness.origin.requests.first?.headers["Accept"], ["text/event-stream"])
        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()
        try await eventually("client joined") { try await harness.joinedClients() == 1 }
        for index in 1...3 { harness.origin.publish(data: "event \(index)") }
        _ = try await client.waitForEvents(3)

        // The origin "restarts" and refuses for a while; an event is published while the gateway is away.
        harness.origin.behaviour = .status(503)
        harness.origin.closeStreams()
        let before = harness.origin.requests.count
        try await eventually("gateway retrying") { harness.origin.requests.count >= before + 1 }
        harness.origin.publish(data: "event 4")  // only in the origin's history
        harness.origin.behaviour = .stream
        try await eventually("upstream back", timeout: .seconds(3)) { harness.origin.openConnections == 1 }
        let resumed = try XCTUnwrap(harness.origin.requests.last)
        XCTAssertEqual(resumed.headers["Last-Event-ID"], ["3"])
        XCTAssertTrue(
            harness.origin.requests[before...].allSatisfy { $0.headers["Last-Event-ID"] == ["3"] },
            "every retry resumes from 3"
        )

        harness.origin.publish(data: "event 5")
        let events = try await client.waitForEvents(5)
        try await Task.sleep(nanoseconds: 100_000_000)
        XCTAssertEqual(client.events.map(\.data), (1...5).map { "event \($0)" })
        XCTAssertEqual(client.events.map(\.id), (1...5).map { String($0) })
        XCTAssertEqual(events.count, 5)

        // A second restart resumes from the newest id again.
        harness.origin.closeStreams()
        try await eventually("upstream back again", timeout: .seconds(3)) {
            harness.origin.openConnections == 1 && harness.origin.requests.last?.headers["Last-Event-ID"] == ["5"]
        }
        harness.origin.publish(data: "event 6")
        _ = try await client.waitForEvents(6)
        try await Task.sleep(nanoseconds: 100_000_000)
        XCTAssertEqual(client.events.map(\.id), (1...6).map { String($0) })
        await client.close()
    }

    /// A stream cut in the middle of an event: the browser's "last event ID string" only moves when an
    /// event is dispatched, so the resume must name the last complete event, or the cut one is lost.
    func testStreamCutMidEventResumesFromLastCompleteEvent() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()
        try await eventually("client joined") { try await harness.joinedClients() == 1 }
        harness.origin.publish(data: "event 1")
        harness.origin.publish(data: "event 2")
        _ = try await client.waitForEvents(2)

        harness.origin.behaviour = .status(503)
        // The first bytes of event 3 get through, then the origin goes down.
        harness.origin.broadcast(ByteBuffer(string: "id: 3\ndata: event"))
        try await Task.sleep(nanoseconds: 100_000_000)
        harness.origin.closeStreams()
        let before = harness.origin.requests.count
        try await eventually("gateway retrying") { harness.origin.requests.count >= before + 1 }
        XCTAssertEqual(harness.origin.publish(data: "event 3"), "3")  // the whole event, in the origin's history
        harness.origin.behaviour = .stream
        try await eventually("upstream back", timeout: .seconds(3)) { harness.origin.openConnections == 1 }
        XCTAssertEqual(
            harness.origin.requests.last?.headers["Last-Event-ID"],
            ["2"],
            "resumed after an event that was never dispatched"
        )

        let events = try await client.waitForEvents(3, timeout: .seconds(2))
        XCTAssertEqual(events.map(\.data), ["event 1", "event 2", "event 3"])
        XCTAssertEqual(events.map(\.id), ["1", "2", "3"])
        await client.close()
    }

    /// An oversized event with an id that the origin would replay on every resume: the gateway skips it
    /// (resumes after its id) instead of reconnecting in a loop.
    func testOversizedEventInOriginHistoryDoesNotCauseReconnectLoop() async throws {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices") { $0.settings.upstream.maxEventSize = 1024 }]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()
        try await eventually("client joined") { try await harness.joinedClients() == 1 }
        harness.origin.publish(data: "small 1")
        harness.origin.publish(data: String(repeating: "x", count: 4096))  // id 2, kept in the origin's history
        try await eventually("reconnected once", timeout: .seconds(3)) {
            harness.origin.totalConnections == 2 && harness.origin.openConnections == 1
        }
        XCTAssertEqual(harness.origin.requests.last?.headers["Last-Event-ID"], ["2"])
        try await Task.sleep(nanoseconds: 400_000_000)
        XCTAssertEqual(harness.origin.totalConnections, 2, "the oversized event was replayed and dropped again")
        harness.origin.publish(data: "small 3")
        let events = try await client.waitForEvents(2)
        XCTAssertEqual(events.map(\.data), ["small 1", "small 3"])
        await client.close()
    }

    func testUpstreamDownAtStartKeepsClientsWithKeepalives() async throws {
        let closedPort = try await closedPort()
        let harness = try await Harness.start { _ in
            [
                try Harness.feed("/down", upstream: "http://127.0.0.1:\(closedPort)/down") {
                    $0.settings.keepalive = .milliseconds(100)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        let client = try await harness.client("/down")
        let head = try await client.waitForHead()
        XCTAssertEqual(head.status, .ok)
        XCTAssertEqual(head.headers["Content-Type"], ["text/event-stream; charset=utf-8"])
        try await client.wait("two keepalives", timeout: .seconds(3)) { snapshot in
            snapshot.body.components(separatedBy: ": keepalive\n").count >= 3
        }
        XCTAssertTrue(client.body.hasPrefix("retry: "), client.body)
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertFalse(client.isClosed, "a client of a feed whose upstream is down must stay connected")
        XCTAssertEqual(client.events.count, 0)
        await client.close()
    }

    /// A backend that accepts, sends two events and ends the stream, again and again, is backed off like
    /// one that refuses: the backoff starts over only after a stream stayed up for `backoff.reset_after`.
    /// (Before, every event reset it: ~60 reconnects in this window at the 20 ms initial backoff.)
    func testFlappingUpstreamIsBackedOff() async throws {
        let log = LogRecorder()
        let harness = try await Harness.start(logger: log.logger()) { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.upstream.backoffInitial = .milliseconds(20)
                    $0.settings.upstream.backoffMax = .milliseconds(400)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()
        harness.origin.behaviour = .streamThenEnd(bodies: ["data: one\n\ndata: two\n\n"])
        let before = harness.origin.requests.count
        harness.origin.closeStreams()
        try await Task.sleep(nanoseconds: 1_500_000_000)
        let reconnects = harness.origin.requests.count - before
        // 20, 40, 80, 160, 320, 400, 400 ms (at least half of each with jitter): at most ~11 in 1.5 s.
        XCTAssertGreaterThanOrEqual(reconnects, 3, "the gateway must keep reconnecting")
        XCTAssertLessThanOrEqual(reconnects, 15, "a flapping upstream was reconnected \(reconnects) times in 1.5 s")
        XCTAssertGreaterThanOrEqual(client.events.count, 2, "the events of the short streams still reach clients")
        // Not a line per reconnect: two cycles (connected, lost, connected, lost + flapping), then quiet.
        let upstreamLines = log.recorded.filter { $0.message.hasPrefix("upstream") }
        XCTAssertLessThanOrEqual(
            upstreamLines.count,
            5,
            "\(reconnects) reconnects logged as \(upstreamLines.map(\.message))"
        )
        XCTAssertTrue(
            upstreamLines.contains { $0.message == "upstream lost" && $0.metadata["flapping"] != nil },
            "\(upstreamLines)"
        )
        XCTAssertFalse(client.isClosed)
        await client.close()
    }

    /// A huge `retry:` from one connection is the floor for the reconnects after it, not for ever: the next
    /// connection that does not repeat it brings the normal backoff back.
    func testUpstreamRetryFloorClearsWhenTheNextConnectionDoesNotRepeatIt() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.upstream.backoffInitial = .milliseconds(20)
                    $0.settings.upstream.backoffMax = .milliseconds(1500)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        harness.origin.behaviour = .streamThenEnd(bodies: ["retry: 1500\ndata: a\n\n", "data: b\n\n"])
        let before = harness.origin.requests.count
        harness.origin.closeStreams()
        var times: [NIODeadline] = []
        var seen = before
        let deadline = NIODeadline.now() + .seconds(5)
        while times.count < 3, NIODeadline.now() < deadline {
            let count = harness.origin.requests.count
            if count > seen {
                for _ in seen..<count { times.append(.now()) }
                seen = count
            }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        XCTAssertEqual(times.count, 3, "expected 3 attempts")
        guard times.count == 3 else { return }
        let afterRetry = (times[1] - times[0]).nanoseconds / 1_000_000
        let afterPlain = (times[2] - times[1]).nanoseconds / 1_000_000
        XCTAssertGreaterThanOrEqual(
            afterRetry,
            1400,
            "the connection that sent retry: 1500 sets the floor for the next attempt"
        )
        // Below the 1500 ms floor it must not keep; above the 200 ms backoff by a loaded machine's slack.
        XCTAssertLessThan(afterPlain, 1300, "a connection without retry: clears the floor (waited \(afterPlain) ms)")
    }

    // MARK: Helpers

}
