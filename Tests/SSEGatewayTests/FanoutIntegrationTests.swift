import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

final class FanoutIntegrationTests: XCTestCase {
    func testTwoHundredClientsShareOneUpstreamAndGetEveryEventInOrder() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }

        var clients: [TestSSEClient] = []
        for _ in 0..<200 {
            clients.append(try await harness.client("/prices"))
        }
        for client in clients { _ = try await client.waitForHead() }
        // Every client has joined once its head is out; publish after that so all must see everything.
        try await eventually("200 clients counted") { try await harness.joinedClients() == 200 }
        let total = 50
        for index in 1...total {
            harness.origin.publish(data: "event \(index)\nsecond line", type: index % 2 == 0 ? "tick" : nil)
        }
        for client in clients {
            let events = try await client.waitForEvents(total)
            XCTAssertEqual(events.count, total)
            XCTAssertEqual(events.map { $0.id }, (1...total).map { String($0) })
            XCTAssertEqual(events.map { $0.data }, (1...total).map { "event \($0)\nsecond line" })
            XCTAssertEqual(events[1].type, "tick")
            XCTAssertNil(events[0].type)
        }
        XCTAssertEqual(harness.origin.totalConnections, 1, "one upstream connection for 200 clients")
        XCTAssertEqual(harness.origin.openConnections, 1)
        for client in clients { await client.close() }
    }

    func testStreamHeadersAndRetryFirst() async throws {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices") { $0.settings.retry = .milliseconds(1500) }]
        }
        self.addTeardownBlock { await harness.stop() }
        let client = try await harness.client("/prices")
        let head = try await client.waitForHead()
        XCTAssertEqual(head.status, .ok)
        XCTAssertEqual(head.headers["Content-Type"], ["text/event-stream; charset=utf-8"])
        XCTAssertEqual(head.headers["Cache-Control"], ["no-cache, no-transform"])
        XCTAssertEqual(head.headers["X-Accel-Buffering"], ["no"])
        XCTAssertEqual(head.headers["Connection"], ["keep-alive"])
        XCTAssertEqual(head.headers["Transfer-Encoding"], ["chunked"])
        XCTAssertTrue(head.headers["Content-Length"].isEmpty)
        try await client.wait("retry line") { $0.body.hasPrefix("retry: 1500\n") }
        await client.close()
    }

}
