import NIOCore
import SSE
import SSEOrigin
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// A gap found after a `/multi` client joined names the feed, as the gaps found at join do.
final class MultiFeedGapTests: XCTestCase {
    /// `/p` is on demand behind a backend that ignores Last-Event-ID: the multi client that resumes it from
    /// 3 seeds its upstream, whose first event is 6, not 4. The client is told before /p's event 6, naming /p.
    func testAGapFoundAfterTheJoinNamesTheFeed() async throws {
        var options = OriginServer.Options()
        options.history = 0  // ignores Last-Event-ID
        let harness = try await Harness.start(origin: options) { origin in
            [
                try Harness.feed("/a", upstream: "\(origin)/a"),
                try Harness.feed("/p", upstream: "\(origin)/p", connect: .onDemand) {
                    $0.settings.replay.gapEvent = true
                },
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("/a connected") { harness.origin.openConnections == 1 }
        for index in 1...5 { harness.origin.publish(data: "before \(index)") }
        try await eventually("gateway received 5") {
            try await harness.metrics().feeds.first(where: { $0.path == "/a" })?.lastEventID == "5"
        }
        let client = try await harness.client("/multi?feed=/a&feed=/p", headers: [("Last-Event-ID", "m1:5,3")])
        try await eventually("/p connected") { harness.origin.openConnections == 2 }
        try await eventually("joined /a and /p") {
            let clients = try await harness.metrics().clientsPerFeed
            return clients["/a"] == 1 && clients["/p"] == 1
        }
        for index in 6...7 { harness.origin.publish(data: "event \(index)") }
        try await client.wait("both feeds' 7") { $0.events.filter { $0.data == "event 7" }.count == 2 }
        let body = client.body
        let comment = try XCTUnwrap(
            body.range(of: ": gap /p: the upstream did not resume after last event id 3; next is 6"),
            body
        )
        let event = try XCTUnwrap(
            body.range(of: "event: gap\ndata: {\"feed\":\"/p\",\"lastEventId\":\"3\",\"replayFrom\":\"6\"}"),
            body
        )
        let sixOfP = try XCTUnwrap(body.range(of: ",6\ndata: event 6"), body)
        XCTAssertLessThan(comment.lowerBound, sixOfP.lowerBound, body)
        XCTAssertLessThan(event.lowerBound, sixOfP.lowerBound, body)
        XCTAssertEqual(client.events.filter { $0.type == "gap" }.count, 1)
        XCTAssertFalse(body.contains(": gap: "), "every gap signal names its feed")
        await client.close()
    }
}
