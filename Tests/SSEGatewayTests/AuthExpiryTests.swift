import Foundation
import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// A token that runs out during a stream: `auth-expiring` ahead of time, `auth-expired` with the last id at
/// the end, and a resume with a fresh token that misses nothing.
final class AuthExpiryTests: XCTestCase {
    func testAnExpiringTokenIsWarnedThenEndedAndTheResumeHasNoGap() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.auth = fixture.auth(.jwt, warnBefore: .seconds(2))
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }

        let shortLived = try await fixture.token(expiresIn: 3)
        let client = try await harness.client("/prices", headers: [("Authorization", "Bearer \(shortLived)")])
        let head = try await client.waitForHead()
        XCTAssertEqual(head.status, .ok)
        try await harness.waitUntilJoined(1)
        for index in 1...3 { _ = harness.origin.publish(data: "before \(index)") }
        _ = try await client.waitForEvents(3)

        let warning = try await client.waitForEvents(4, timeout: .seconds(3)).last
        XCTAssertEqual(warning?.type, "auth-expiring")
        XCTAssertNil(warning?.id, "a notice does not move the resume position")
        let expiringData = try XCTUnwrap(warning?.data)
        XCTAssertTrue(expiringData.hasPrefix("{\"expiresAt\":\""), expiringData)

        _ = harness.origin.publish(data: "after the warning")
        try await client.waitForClose(timeout: .seconds(4))
        let events = client.events
        XCTAssertEqual(events.last?.type, "auth-expired")
        let delivered = events.filter { $0.type == nil }
        XCTAssertEqual(delivered.map(\.data), ["before 1", "before 2", "before 3", "after the warning"])
        let lastID = try XCTUnwrap(delivered.last?.id)
        XCTAssertEqual(events.last?.data, "{\"lastEventId\":\"\(lastID)\"}")
        XCTAssertTrue(client.body.hasSuffix("\n\n"), "the stream ended cleanly, not cut mid-event")

        // Published while the client was away; the fresh token resumes from the id the notice named.
        for index in 1...2 { _ = harness.origin.publish(data: "while away \(index)") }
        try await eventually("gateway received the events published while away") {
            try await harness.metrics().feeds.first?.lastEventID == String(Int(lastID)! + 2)
        }
        let fresh = try await fixture.token(expiresIn: 300)
        let resumed = try await harness.client(
            "/prices",
            headers: [("Authorization", "Bearer \(fresh)"), ("Last-Event-ID", lastID)]
        )
        let replay = try await resumed.waitForEvents(2)
        XCTAssertEqual(replay.map(\.data), ["while away 1", "while away 2"], "no gap, no duplicate")
        await resumed.close()
        let clients = try await harness.metrics().connectedClients
        XCTAssertLessThanOrEqual(clients, 1)
    }

    func testExpiryCanBeTurnedOffPerFeed() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.auth = fixture.auth(.jwt, warnBefore: .milliseconds(500))
                    $0.settings.auth.expiry.enforce = false
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let token = try await fixture.token(expiresIn: 1)
        let client = try await harness.client("/prices", headers: [("Authorization", "Bearer \(token)")])
        _ = try await client.waitForHead()
        try await harness.waitUntilJoined(1)
        try await Task.sleep(for: .milliseconds(1_500))
        _ = harness.origin.publish(data: "still here")
        let events = try await client.waitForEvents(1)
        XCTAssertEqual(events.map(\.data), ["still here"], "no notice, no end: only new connections are checked")
        XCTAssertFalse(client.isClosed)
    }
}
