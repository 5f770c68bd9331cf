import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// `auth: forward` through the running gateway, against an auth backend in the test process that counts its
/// calls: a reconnect storm costs one call per credential, a backend that is down lets nobody in, the calls
/// in flight stay under `max_concurrent`, and a long stream is ended when its re-check is refused.
final class ForwardAuthGateTests: XCTestCase {
    private func start(
        backend: ForwardAuthBackend,
        configure: (inout ForwardAuthConfig) -> Void = { _ in }
    ) async throws -> Harness {
        let backendURL = try UpstreamURL(parsing: backend.url)
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/orders", upstream: "\(origin)/orders") {
                    $0.settings.auth.mode = .forward
                    $0.settings.auth.forward.url = backendURL
                    configure(&$0.settings.auth.forward)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        return harness
    }

    /// Opens `count` streams at once; returns each one's status (0: no head in time).
    private func connectAll(
        _ harness: Harness,
        count: Int,
        cookie: @escaping @Sendable (Int) -> String
    ) async throws -> [(status: Int, client: TestSSEClient)] {
        try await withThrowingTaskGroup(of: (Int, TestSSEClient).self) { group in
            for index in 0..<count {
                group.addTask {
                    let client = try await harness.client("/orders", headers: [("Cookie", cookie(index))])
                    let head = try await client.waitForHead()
                    return (Int(head.status.code), client)
                }
            }
            var results: [(Int, TestSSEClient)] = []
            for try await result in group { results.append(result) }
            return results
        }
    }

    func testAThousandClientsWithTenCookiesCostTenCalls() async throws {
        let backend = try await ForwardAuthBackend.start { _ in .init(delay: .milliseconds(50)) }
        self.addTeardownBlock { try? await backend.stop() }
        let harness = try await self.start(backend: backend) { $0.ttl = .seconds(30) }
        let results = try await self.connectAll(harness, count: 1_000) { "session=user-\($0 % 10)" }
        XCTAssertEqual(results.filter { $0.status == 200 }.count, 1_000)
        XCTAssertLessThanOrEqual(backend.snapshot.calls, 10, "one call per credential within the TTL")
        XCTAssertGreaterThanOrEqual(backend.snapshot.calls, 10)
        try await harness.waitUntilJoined(1_000, path: "/orders")
        _ = harness.origin.publish(data: "filled")
        for (_, client) in results.prefix(20) {
            let events = try await client.waitForEvents(1)
            XCTAssertEqual(events.first?.data, "filled")
        }
        for (_, client) in results { await client.close() }
        let seen = try XCTUnwrap(backend.snapshot.seen.first)
        XCTAssertEqual(seen.headers.first(name: "X-Original-URI"), "/orders")
        XCTAssertEqual(seen.headers.first(name: "X-Forwarded-For"), "127.0.0.1")
    }

    func testABackendThatIsDownLetsNobodyIn() async throws {
        let backend = try await ForwardAuthBackend.start { _ in .init() }
        let harness = try await self.start(backend: backend)
        try await backend.stop()
        let results = try await self.connectAll(harness, count: 50) { "session=\($0)" }
        XCTAssertEqual(results.map(\.status), Array(repeating: 503, count: 50))
        for (_, client) in results {
            try await client.waitForClose()
            XCTAssertTrue(client.body.contains("\"auth_unavailable\""), client.body)
            XCTAssertNotNil(client.snapshot.head?.headers.first(name: "Retry-After"))
        }
        let joined = try await harness.joinedClients()
        XCTAssertEqual(joined, 0)
        let counts = harness.gateway.context.access.outcomes.snapshot
        XCTAssertEqual(counts[.init(feed: "/orders", outcome: "unavailable", reason: "forward_error")], 50)
    }

    func testAReconnectStormKeepsCallsInFlightUnderMaxConcurrent() async throws {
        let backend = try await ForwardAuthBackend.start { _ in .init(delay: .milliseconds(10)) }
        self.addTeardownBlock { try? await backend.stop() }
        let harness = try await self.start(backend: backend) {
            $0.maxConcurrent = 8
            $0.queueTimeout = .seconds(5)
        }
        let results = try await self.connectAll(harness, count: 1_000) { "session=distinct-\($0)" }
        XCTAssertLessThanOrEqual(backend.snapshot.maxInFlight, 8, "never more than max_concurrent calls at once")
        XCTAssertEqual(backend.snapshot.calls, results.filter { $0.status == 200 }.count)
        XCTAssertEqual(Set(results.map(\.status)).subtracting([200, 503]), [], "allowed or told to come back")
        // Not vacuous: calls were made and clients let in (how many fit in the queue timeout depends on load).
        XCTAssertGreaterThanOrEqual(results.filter { $0.status == 200 }.count, 100)
        for (_, client) in results { await client.close() }
    }

    func testALongStreamIsEndedWhenItsRecheckIsRefused() async throws {
        let allow = NIOLockedValueBox(true)
        let backend = try await ForwardAuthBackend.start { _ in
            allow.withLockedValue { $0 } ? .init() : .init(status: .unauthorized)
        }
        self.addTeardownBlock { try? await backend.stop() }
        let harness = try await self.start(backend: backend) {
            $0.ttl = .milliseconds(100)
            $0.recheck = .milliseconds(300)
        }
        let client = try await harness.client("/orders", headers: [("Cookie", "session=alice")])
        let head = try await client.waitForHead()
        XCTAssertEqual(head.status, .ok)
        try await harness.waitUntilJoined(1, path: "/orders")
        _ = harness.origin.publish(data: "first")
        _ = try await client.waitForEvents(1)
        try await Task.sleep(for: .milliseconds(700))
        XCTAssertFalse(client.isClosed, "re-checks that allow keep the stream")
        allow.withLockedValue { $0 = false }
        try await client.waitForClose(timeout: .seconds(3))
        let last = try XCTUnwrap(client.events.last)
        XCTAssertEqual(last.type, "auth-expired")
        XCTAssertEqual(last.data, "{\"lastEventId\":\"\(client.events[0].id!)\"}")
    }
}
