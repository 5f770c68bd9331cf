import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

final class TemplateFeedTests: XCTestCase {
    func testEachTemplateValueHasItsOwnUpstreamThatClosesAfterLinger() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed(
                    "/rooms/{room}",
                    upstream: "\(origin)/upstream/rooms/{room}/events",
                    connect: .onDemand
                ) {
                    $0.linger = .milliseconds(200)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        XCTAssertEqual(harness.origin.totalConnections, 0, "templates connect on first subscribe")
        let a1 = try await harness.client("/rooms/a")
        let a2 = try await harness.client("/rooms/a")
        let b = try await harness.client("/rooms/b%20c")
        for client in [a1, a2, b] { _ = try await client.waitForHead() }
        try await eventually("two upstreams") { harness.origin.openConnections == 2 }
        let uris = Set(harness.origin.requests.map(\.uri))
        XCTAssertEqual(uris, ["/upstream/rooms/a/events", "/upstream/rooms/b%20c/events"])
        XCTAssertEqual(harness.origin.totalConnections, 2)

        // Leaving one of two clients keeps the upstream; leaving the last closes it after linger.
        await a1.close()
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertEqual(harness.origin.openConnections, 2)
        await a2.close()
        await b.close()
        try await eventually("upstreams closed after linger") { harness.origin.openConnections == 0 }
        let open = try await harness.metrics().feeds.filter { !$0.retired }
        XCTAssertTrue(open.isEmpty, "template instances are gone: \(open.map(\.path))")

        // Coming back opens a new upstream.
        let again = try await harness.client("/rooms/a")
        _ = try await again.waitForHead()
        try await eventually("reopened") { harness.origin.openConnections == 1 }
        XCTAssertEqual(harness.origin.totalConnections, 3)
        await again.close()
    }

    func testClientReturningWithinLingerKeepsTheUpstream() async throws {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/live", upstream: "\(origin)/live", connect: .onDemand) { $0.linger = .seconds(5) }]
        }
        self.addTeardownBlock { await harness.stop() }
        let first = try await harness.client("/live")
        _ = try await first.waitForHead()
        try await eventually("connected") { harness.origin.openConnections == 1 }
        await first.close()
        try await Task.sleep(nanoseconds: 100_000_000)
        let second = try await harness.client("/live")
        _ = try await second.waitForHead()
        harness.origin.publish(data: "x")
        _ = try await second.waitForEvents(1)
        XCTAssertEqual(harness.origin.totalConnections, 1, "no reconnect within linger")
        await second.close()
    }

    func testPathTemplateMatching() throws {
        let template = try PathTemplate(parsing: "/rooms/{room}/feed")
        XCTAssertEqual(template.match("/rooms/42/feed"), ["room": "42"])
        XCTAssertNil(template.match("/rooms//feed"))
        XCTAssertNil(template.match("/rooms/42"))
        XCTAssertNil(template.match("/rooms/42/feed/more"))
        XCTAssertTrue(template.isTemplate)
        XCTAssertFalse(try PathTemplate(parsing: "/prices").isTemplate)
        XCTAssertThrowsError(try PathTemplate(parsing: "/rooms/x{room}"))
        let url = try UpstreamURL(parsing: "https://user:pw@backend:8443/r/{room}?x=1")
        XCTAssertEqual(url.filled(with: ["room": "a/b c"]).target, "/r/a%2Fb%20c?x=1")
        XCTAssertEqual(
            url.description,
            "https://backend:8443/r/{room}?x=***",
            "no credentials or query values in descriptions"
        )
        XCTAssertEqual(url.port, 8443)
        XCTAssertEqual(url.userInfo, "user:pw")
    }

    func testRequestsThatDoNotStreamOpenNoInstanceAndDotSegmentsAre404() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/rooms/{room}", upstream: "\(origin)/r/{room}", connect: .onDemand) {
                    $0.maxFeeds = 2
                    $0.linger = .milliseconds(50)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        for index in 0..<5 {
            let head = try await rawExchange(
                port: harness.port,
                "HEAD /rooms/h\(index) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                group: harness.clientGroup
            )
            XCTAssertTrue(head.response.hasPrefix("HTTP/1.1 200 OK"), head.response)
            let options = try await rawExchange(
                port: harness.port,
                "OPTIONS /rooms/o\(index) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                group: harness.clientGroup
            )
            XCTAssertTrue(options.response.hasPrefix("HTTP/1.1 204"), options.response)
        }
        let open = try await harness.metrics().feeds.filter { !$0.retired }
        XCTAssertTrue(open.isEmpty, "HEAD and OPTIONS opened \(open.map(\.path))")
        XCTAssertEqual(harness.origin.totalConnections, 0)
        // max_feeds still has room for two real subscribers.
        let a = try await harness.client("/rooms/a")
        let b = try await harness.client("/rooms/b")
        let headA = try await a.waitForHead()
        let headB = try await b.waitForHead()
        XCTAssertEqual(headA.status, .ok)
        XCTAssertEqual(headB.status, .ok)
        for path in ["/rooms/..", "/rooms/.", "/rooms/%2E%2E"] {
            let dots = try await rawExchange(
                port: harness.port,
                "GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                group: harness.clientGroup
            )
            XCTAssertTrue(dots.response.hasPrefix("HTTP/1.1 404"), "\(path): \(dots.response)")
        }
        XCTAssertFalse(harness.origin.requests.contains { $0.uri.contains("..") })
        await a.close()
        await b.close()
    }

    func testFirstJoinerSeedsTheUpstreamResumePosition() async throws {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/live", upstream: "\(origin)/live", connect: .onDemand)]
        }
        self.addTeardownBlock { await harness.stop() }
        for index in 1...6 { harness.origin.publish(data: "before \(index)") }  // history only: no stream open yet
        let client = try await harness.client("/live", headers: [("Last-Event-ID", "4")])
        let events = try await client.waitForEvents(2)
        XCTAssertEqual(events.map(\.id), ["5", "6"], "the origin replayed from the client's id")
        XCTAssertEqual(harness.origin.requests.first?.headers["Last-Event-ID"], ["4"])
        XCTAssertFalse(client.body.contains(": gap"), "no gap: the upstream filled it")
        await client.close()
    }
}
