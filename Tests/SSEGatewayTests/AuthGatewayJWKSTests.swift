import Foundation
import NIOCore
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// `auth.jwt.jwks_url` through the running gateway, against a JWKS served by the test process: tokens signed
/// with the served key stream, a rotated key with a new `kid` is picked up without a restart, and a reload that
/// turns a feed's auth on (fetching the JWKS while it applies) makes new requests need a token.
final class AuthGatewayJWKSTests: XCTestCase {
    /// `auth:` of a feed verified against `server`'s keys only; a short `jwks_min_refresh` so that a rotation
    /// is picked up within the test, no leeway.
    private func jwksAuth(_ server: JWKSTestServer, refresh: TimeAmount = .minutes(10)) throws -> AuthConfig {
        var auth = AuthConfig()
        auth.mode = .jwt
        auth.jwt.jwksURL = try UpstreamURL(parsing: server.url)
        auth.jwt.jwksRefresh = refresh
        auth.jwt.jwksMinRefresh = .milliseconds(300)
        auth.jwt.leewaySeconds = 0
        return auth
    }

    private func startServer(_ keys: [JWKSTestKey]) async throws -> JWKSTestServer {
        let server = try await JWKSTestServer.start(.keys(keys.map(\.jwk)))
        self.addTeardownBlock { try? await server.stop() }
        return server
    }

    private func start(auth: AuthConfig) async throws -> Harness {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices") { $0.settings.auth = auth }]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        return harness
    }

    /// Opens a stream with `token` (nil: none), checks that it delivers an event, and closes it.
    private func assertStreams(
        _ harness: Harness,
        token: String?,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws {
        let client = try await harness.client(
            "/prices",
            headers: token.map { [("Authorization", "Bearer \($0)")] } ?? []
        )
        let head = try await client.waitForHead(file: file, line: line)
        XCTAssertEqual(head.status, .ok, client.body, file: file, line: line)
        guard head.status == .ok else { return }
        try await harness.waitUntilJoined(1, file: file, line: line)
        _ = harness.origin.publish(data: "tick")
        let events = try await client.waitForEvents(1, file: file, line: line)
        XCTAssertEqual(events.first?.data, "tick", file: file, line: line)
        await client.close()
        try await eventually("the client left", file: file, line: line) {
            try await harness.metrics().clientsPerFeed["/prices", default: 0] == 0
        }
    }

    /// The status and JSON body of a refused request.
    private func refusal(
        _ harness: Harness,
        token: String?,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> (status: Int, body: String) {
        let client = try await harness.client(
            "/prices",
            headers: token.map { [("Authorization", "Bearer \($0)")] } ?? []
        )
        let head = try await client.waitForHead(file: file, line: line)
        try await client.waitForClose(file: file, line: line)
        XCTAssertEqual(head.headers.first(name: "Content-Type"), "application/json", file: file, line: line)
        return (Int(head.status.code), client.body)
    }

    private func count(_ harness: Harness, _ outcome: String, _ reason: String) -> Int {
        harness.gateway.context.access.outcomes.snapshot[.init(feed: "/prices", outcome: outcome, reason: reason)] ?? 0
    }

    func testATokenFromTheServedKeyStreamsAndARotatedKidIsPickedUpWithoutRestart() async throws {
        let old = JWKSTestKey(kid: "2026-01")
        let new = JWKSTestKey(kid: "2026-02")
        let server = try await self.startServer([old])
        let harness = try await self.start(auth: try self.jwksAuth(server))
        XCTAssertEqual(server.requests, 1, "fetched once while the gateway started")

        try await self.assertStreams(harness, token: try await old.token())
        let stranger = try await self.refusal(harness, token: try await JWKSTestKey(kid: "2026-01").token())
        XCTAssertEqual(stranger.status, 401, "the kid is known, the signature is not its key's")
        XCTAssertTrue(stranger.body.contains("\"bad_signature\""), stranger.body)

        // The identity provider rotates: the old key is gone, a new one with a new kid is served.
        server.reply = .keys([new.jwk])
        let newToken = try await new.token()
        try await Task.sleep(for: .milliseconds(350))  // past jwks_min_refresh since the start-up fetch
        try await self.assertStreams(harness, token: newToken)
        XCTAssertEqual(server.requests, 2, "one refetch, for the unknown kid")
        try await self.assertStreams(harness, token: newToken)
        XCTAssertEqual(server.requests, 2, "a known kid fetches nothing")

        let revoked = try await self.refusal(harness, token: try await old.token())
        XCTAssertEqual(revoked.status, 401)
        XCTAssertTrue(revoked.body.contains("\"unknown_kid\""), "the rotated-out key verifies nothing: \(revoked.body)")

        XCTAssertEqual(self.count(harness, "allowed", "credential"), 3)
        XCTAssertEqual(self.count(harness, "refused", "bad_signature"), 1)
        XCTAssertEqual(self.count(harness, "refused", "unknown_kid"), 1)
        let text = try await harness.gateway.metrics.render(on: harness.group.next()).get()
        for line in [
            "ssegate_auth_requests_total{feed=\"/prices\",outcome=\"allowed\",reason=\"credential\"} 3",
            "ssegate_auth_requests_total{feed=\"/prices\",outcome=\"refused\",reason=\"unknown_kid\"} 1",
        ] {
            XCTAssertTrue(text.contains(line), "\(line) in\n\(text)")
        }
    }

    func testAReloadThatTurnsAuthOnMakesNewRequestsNeedATokenAndTurningItOffStopsTheRefresh() async throws {
        let key = JWKSTestKey(kid: "k1")
        let server = try await self.startServer([key])
        let harness = try await self.start(auth: AuthConfig())
        try await self.assertStreams(harness, token: nil)
        XCTAssertEqual(server.requests, 0, "an open feed fetches no keys")

        // Admitted anonymously before the reload: its stream must not outlive the open gate.
        let admittedBefore = try await harness.client("/prices", headers: [("Last-Event-ID", "0")])
        _ = try await admittedBefore.waitForHead()
        try await harness.waitUntilJoined(1)

        var config = harness.gateway.config
        config.feeds[0].settings.auth = try self.jwksAuth(server, refresh: .milliseconds(200))
        var (summary, errors) = await harness.gateway.reload(config)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(summary.changed, ["/prices"])
        XCTAssertGreaterThanOrEqual(server.requests, 1, "the keys were fetched while the reload applied")
        XCTAssertEqual(harness.gateway.context.access.mode(ofFeed: "/prices"), .jwt)
        try await admittedBefore.waitForClose(timeout: .seconds(3))
        XCTAssertTrue(admittedBefore.body.hasSuffix("retry: \(FeedSettings().retry.nanoseconds / 1_000_000)\n\n"))

        let anonymous = try await self.refusal(harness, token: nil)
        XCTAssertEqual(anonymous.status, 401)
        XCTAssertTrue(anonymous.body.contains("\"missing\""), anonymous.body)
        try await self.assertStreams(harness, token: try await key.token())
        try await eventually("the refresh loop runs", timeout: .seconds(3)) { server.requests >= 3 }

        // Turning the gate off ends nothing: a stream with a token may go on.
        let withToken = try await harness.client(
            "/prices",
            headers: [("Authorization", "Bearer \(try await key.token())")]
        )
        _ = try await withToken.waitForHead()
        try await harness.waitUntilJoined(1)
        config.feeds[0].settings.auth = AuthConfig()
        (summary, errors) = await harness.gateway.reload(config)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(harness.gateway.context.access.mode(ofFeed: "/prices"), .none)
        _ = harness.origin.publish(data: "after the gate opened")
        let kept = try await withToken.waitForEvents(1)
        XCTAssertEqual(kept.map(\.data), ["after the gate opened"])
        await withToken.close()
        try await eventually("the client left") {
            try await harness.metrics().clientsPerFeed["/prices", default: 0] == 0
        }
        try await self.assertStreams(harness, token: nil)
        let afterOff = server.requests
        try await Task.sleep(for: .milliseconds(600))
        XCTAssertEqual(server.requests, afterOff, "the replaced verifier's refresh loop was cancelled")
    }
}
