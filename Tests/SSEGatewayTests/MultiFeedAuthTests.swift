import NIOConcurrencyHelpers
import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Credentials that end a `/multi` stream, with the two feeds of `MultiFeedTests`: one `auth-expiring`
/// per connection ahead of the earliest `exp`, `auth-expired` with the composite id at the end and a
/// resume from it without gap or duplicate; a forward-auth feed's refused re-check ends the connection.
extension MultiFeedTests {
    func testAnExpiringTokenIsWarnedOnceThenEndedWithTheCompositeID() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start(
            configureA: { $0.settings.auth = fixture.auth(.jwt, warnBefore: .seconds(2)) },
            configureB: { $0.settings.auth = fixture.auth(.jwt, warnBefore: .seconds(1)) }
        )
        let path = "/multi?feed=/a&feed=/b"
        let shortLived = try await fixture.token(feeds: ["/a", "/b"], expiresIn: 3)
        let client = try await harness.client(path, headers: [("Authorization", "Bearer \(shortLived)")])
        let head = try await client.waitForHead()
        XCTAssertEqual(head.status, .ok)
        try await self.waitUntilJoinedBoth(harness)
        try await self.publish(harness, "/a", 1...1)
        try await self.publish(harness, "/b", 1...1)
        let warning = try await client.waitForEvents(3, timeout: .seconds(3)).last
        XCTAssertEqual(warning?.type, "auth-expiring")
        XCTAssertNil(warning?.id)
        let warnedAt = NIODeadline.now()
        try await self.publish(harness, "/a", 2...2)
        try await client.waitForClose(timeout: .seconds(4))
        XCTAssertGreaterThan(NIODeadline.now() - warnedAt, .milliseconds(1_300), "warned 2 s ahead, not 1 s")
        let events = client.events
        XCTAssertEqual(events.filter { $0.type == "auth-expiring" }.count, 1, "one notice per connection")
        XCTAssertEqual(events.last?.type, "auth-expired")
        XCTAssertEqual(events.last?.data, "{\"lastEventId\":\"m1:2,1\"}")
        XCTAssertEqual(events.filter { $0.type == nil }.map(\.id), ["m1:1,", "m1:1,1", "m1:2,1"])
        XCTAssertTrue(client.body.hasSuffix("\n\n"), "the stream ended cleanly")

        try await self.publish(harness, "/b", 2...2)
        try await self.publish(harness, "/a", 3...3)
        let fresh = try await fixture.token(feeds: ["/a", "/b"], expiresIn: 300)
        let resumed = try await harness.client(
            path,
            headers: [("Authorization", "Bearer \(fresh)"), ("Last-Event-ID", "m1:2,1")]
        )
        let replay = try await resumed.waitForEvents(2)
        XCTAssertEqual(replay.map(\.data), ["/a 3", "/b 2"], "no gap, no duplicate")
        await resumed.close()
    }

    func testAForwardAuthFeedsRefusedRecheckEndsTheConnection() async throws {
        let allow = NIOLockedValueBox(true)
        let backend = try await ForwardAuthBackend.start { _ in
            allow.withLockedValue { $0 } ? .init() : .init(status: .unauthorized)
        }
        self.addTeardownBlock { try? await backend.stop() }
        let backendURL = try UpstreamURL(parsing: backend.url)
        let harness = try await self.start(configureB: {
            $0.settings.auth.mode = .forward
            $0.settings.auth.forward.url = backendURL
            $0.settings.auth.forward.ttl = .milliseconds(100)
            $0.settings.auth.forward.recheck = .milliseconds(300)
        })
        let client = try await harness.client("/multi?feed=/a&feed=/b", headers: [("Cookie", "session=alice")])
        let head = try await client.waitForHead()
        XCTAssertEqual(head.status, .ok)
        try await self.waitUntilJoinedBoth(harness)
        try await self.publish(harness, "/b", 1...1)
        _ = try await client.waitForEvents(1)
        try await Task.sleep(for: .milliseconds(700))
        XCTAssertFalse(client.isClosed, "re-checks that allow keep the stream")
        XCTAssertGreaterThanOrEqual(backend.snapshot.calls, 2, "re-checked")
        allow.withLockedValue { $0 = false }
        try await client.waitForClose(timeout: .seconds(3))
        let last = try XCTUnwrap(client.events.last)
        XCTAssertEqual(last.type, "auth-expired")
        XCTAssertEqual(last.data, "{\"lastEventId\":\"m1:,1\"}")
        try await eventually("slots released") { try await harness.metrics().connectedClients == 0 }
    }
}
