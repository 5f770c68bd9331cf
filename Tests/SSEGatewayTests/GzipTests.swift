import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

final class GzipTests: XCTestCase {
    func testGzipStreamDecodesEventByEventAsItArrives() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let gzip = try await harness.client("/prices", headers: [("Accept-Encoding", "gzip, deflate")], gunzip: true)
        let plain = try await harness.client("/prices")
        let head = try await gzip.waitForHead()
        XCTAssertEqual(head.headers["Content-Encoding"], ["gzip"])
        XCTAssertEqual(head.headers["Vary"], ["Accept-Encoding"])
        let plainHead = try await plain.waitForHead()
        XCTAssertTrue(plainHead.headers["Content-Encoding"].isEmpty)
        XCTAssertEqual(plainHead.headers["Vary"], ["Accept-Encoding"])
        try await eventually("joined") { try await harness.metrics().connectedClients == 2 }
        // One event at a time: each must be decodable before the next is sent (sync flush per batch).
        let payload = String(repeating: "{\"price\":101.25,\"symbol\":\"ACME\"}", count: 8)
        for index in 1...20 {
            harness.origin.publish(data: "\(index) \(payload)")
            let events = try await gzip.waitForEvents(index)
            XCTAssertEqual(events.last?.id, String(index))
            XCTAssertEqual(events.last?.data, "\(index) \(payload)")
        }
        XCTAssertTrue(gzip.body.hasPrefix("retry: 3000\n"), "the prelude is compressed too")
        let plainEvents = try await plain.waitForEvents(20)
        XCTAssertEqual(plainEvents.map(\.data), gzip.events.map(\.data))
        // Repetitive JSON compresses well even with a flush per event.
        XCTAssertLessThan(
            gzip.compressedBytes * 3,
            gzip.body.utf8.count,
            "compressed \(gzip.compressedBytes) of \(gzip.body.utf8.count)"
        )
        await gzip.close()
        await plain.close()
    }

    func testNoGzipWhenTheFeedTurnsCompressionOffOrTheClientRefusesIt() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/off", upstream: "\(origin)/off") { $0.settings.compression = false },
                try Harness.feed("/on", upstream: "\(origin)/on"),
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        let off = try await harness.client("/off", headers: [("Accept-Encoding", "gzip")])
        let refused = try await harness.client("/on", headers: [("Accept-Encoding", "gzip;q=0, identity")])
        let offHead = try await off.waitForHead()
        let refusedHead = try await refused.waitForHead()
        XCTAssertTrue(offHead.headers["Content-Encoding"].isEmpty)
        XCTAssertTrue(offHead.headers["Vary"].isEmpty)
        XCTAssertTrue(refusedHead.headers["Content-Encoding"].isEmpty)
        try await off.wait("plain retry") { $0.body.hasPrefix("retry:") }
        try await refused.wait("plain retry") { $0.body.hasPrefix("retry:") }
        await off.close()
        await refused.close()
    }

    func testAcceptEncodingParsing() {
        XCTAssertTrue(GzipTransport.accepts(["gzip"]))
        XCTAssertTrue(GzipTransport.accepts(["deflate, GZIP;q=0.5"]))
        XCTAssertTrue(GzipTransport.accepts(["br", "x-gzip"]))
        XCTAssertTrue(GzipTransport.accepts(["*"]))
        XCTAssertFalse(GzipTransport.accepts([]))
        XCTAssertFalse(GzipTransport.accepts(["identity"]))
        XCTAssertFalse(GzipTransport.accepts(["gzip;q=0"]))
        XCTAssertFalse(GzipTransport.accepts(["*;q=0"]))
        XCTAssertFalse(GzipTransport.accepts(["gzip;q=0, *"]), "an explicit gzip;q=0 wins over the wildcard")
    }
}
