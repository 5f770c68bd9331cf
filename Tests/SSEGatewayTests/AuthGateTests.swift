import Foundation
import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// The access gate through the running gateway: what a feed with `auth: jwt` or `auth: optional` answers
/// with no, a bad, an expired, a foreign or a valid token, in each place a token may travel; what
/// `/metrics` and the summary log say; and what reaches the upstream.
final class AuthGateTests: XCTestCase {
    private func start(
        _ fixture: AuthGateFixture,
        logger: LogRecorder? = nil,
        /// Applied to the `jwt` feeds (`/prices`, `/rooms/{room}`).
        auth: (inout AuthConfig) -> Void = { _ in }
    ) async throws -> Harness {
        let harness = try await Harness.start(logger: logger?.logger()) { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.auth = fixture.auth(.jwt)
                    auth(&$0.settings.auth)
                },
                try Harness.feed("/open", upstream: "\(origin)/open") {
                    $0.settings.auth = fixture.auth(.optional)
                },
                try Harness.feed("/rooms/{room}", upstream: "\(origin)/rooms/{room}", connect: .onDemand) {
                    $0.settings.auth = fixture.auth(.jwt)
                    auth(&$0.settings.auth)
                },
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstreams connected") { harness.origin.openConnections == 2 }
        return harness
    }

    /// The refusal's status, its `WWW-Authenticate` and its JSON reason; fails when the answer is a stream.
    private func refusal(
        _ harness: Harness,
        _ path: String,
        headers: [(String, String)] = [],
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> (status: Int, challenge: String?, body: String) {
        let client = try await harness.client(path, headers: headers)
        let head = try await client.waitForHead(file: file, line: line)
        try await client.waitForClose(file: file, line: line)
        XCTAssertEqual(head.headers.first(name: "Content-Type"), "application/json", file: file, line: line)
        XCTAssertFalse(client.body.contains("retry:"), "a refusal is not a stream", file: file, line: line)
        return (Int(head.status.code), head.headers.first(name: "WWW-Authenticate"), client.body)
    }

    private func assertStreams(
        _ harness: Harness,
        _ path: String,
        headers: [(String, String)],
        feed: String = "/prices",
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws {
        let client = try await harness.client(path, headers: headers)
        let head = try await client.waitForHead(file: file, line: line)
        XCTAssertEqual(head.status, .ok, file: file, line: line)
        XCTAssertEqual(
            head.headers.first(name: "Content-Type"),
            "text/event-stream; charset=utf-8",
            file: file,
            line: line
        )
        try await harness.waitUntilJoined(1, path: feed, file: file, line: line)
        _ = harness.origin.publish(data: "tick")
        let events = try await client.waitForEvents(1, file: file, line: line)
        XCTAssertEqual(events.first?.data, "tick", file: file, line: line)
        await client.close()
        try await eventually("the client of \(feed) left", file: file, line: line) {
            try await harness.metrics().clientsPerFeed[feed, default: 0] == 0
        }
    }

    func testAMissingTokenIsA401ThatStopsEventSource() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start(fixture)
        let answer = try await self.refusal(harness, "/prices")
        XCTAssertEqual(answer.status, 401)
        XCTAssertEqual(
            answer.challenge,
            "Bearer realm=\"ssegate\", error=\"invalid_token\", error_description=\"missing\""
        )
        XCTAssertEqual(answer.body, "{\"error\":\"invalid_token\",\"reason\":\"missing\"}\n")
        let clients = try await harness.metrics().connectedClients
        XCTAssertEqual(clients, 0, "a refused request holds no client slot")
    }

    func testAValidTokenStreamsFromTheHeaderAndTheCookie() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start(fixture)
        let token = try await fixture.token()
        try await self.assertStreams(harness, "/prices", headers: [("Authorization", "Bearer \(token)")])
        try await self.assertStreams(harness, "/prices", headers: [("Cookie", "theme=dark; access_token=\(token)")])
    }

    func testBadExpiredAndForeignTokensAreRefusedWithTheirReason() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start(fixture)
        let expired = try await fixture.token(expiresIn: -5)
        var answer = try await self.refusal(harness, "/prices", headers: [("Authorization", "Bearer \(expired)")])
        XCTAssertEqual(answer.status, 401)
        XCTAssertTrue(answer.body.contains("\"expired\""), answer.body)

        let forged = try await fixture.token(secret: String(repeating: "another-secret-", count: 4))
        answer = try await self.refusal(harness, "/prices", headers: [("Authorization", "Bearer \(forged)")])
        XCTAssertEqual(answer.status, 401)
        XCTAssertTrue(answer.body.contains("\"bad_signature\""), answer.body)

        answer = try await self.refusal(harness, "/prices", headers: [("Authorization", "Bearer not.a.token")])
        XCTAssertEqual(answer.status, 401)
        XCTAssertTrue(answer.body.contains("\"malformed\""), answer.body)

        let otherFeed = try await fixture.token(feeds: ["/news"])
        answer = try await self.refusal(harness, "/prices", headers: [("Authorization", "Bearer \(otherFeed)")])
        XCTAssertEqual(answer.status, 403)
        XCTAssertEqual(answer.challenge, "Bearer realm=\"ssegate\", error=\"insufficient_scope\"")

        let noClaim = try await fixture.token(feeds: nil)
        answer = try await self.refusal(harness, "/prices", headers: [("Authorization", "Bearer \(noClaim)")])
        XCTAssertEqual(answer.status, 403, "default_allow is empty: a token without the claim gets nothing")

        let counts = harness.gateway.context.access.outcomes.snapshot
        for reason in ["expired", "bad_signature", "malformed", "forbidden"] {
            XCTAssertGreaterThanOrEqual(
                counts[.init(feed: "/prices", outcome: "refused", reason: reason)] ?? 0,
                1,
                "counted under \(reason)"
            )
        }
        let text = try await harness.gateway.metrics.render(on: harness.group.next()).get()
        XCTAssertTrue(
            text.contains("ssegate_auth_requests_total{feed=\"/prices\",outcome=\"refused\",reason=\"expired\"} 1"),
            text
        )
    }

    func testTheQueryTokenCountsOnlyWhenAllowedAndNeverReachesTheUpstream() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start(fixture)
        let token = try await fixture.token(feeds: ["/prices", "/rooms/{room}"])
        let answer = try await self.refusal(harness, "/prices?access_token=\(token)")
        XCTAssertEqual(answer.status, 401, "allow_query_token is off by default")
        XCTAssertTrue(answer.body.contains("\"missing\""), answer.body)

        let allowing = try await self.start(fixture) { $0.jwt.credentials.allowQueryToken = true }
        try await self.assertStreams(allowing, "/prices?access_token=\(token)", headers: [])
        // A template feed opens its upstream for this request: its URL is the configured one, not the client's.
        try await self.assertStreams(allowing, "/rooms/7?access_token=\(token)", headers: [], feed: "/rooms/7")
        let targets = allowing.origin.requests.map(\.uri)
        XCTAssertTrue(targets.contains("/rooms/7"), "\(targets)")
        XCTAssertFalse(targets.contains { $0.contains("access_token") || $0.contains(token) }, "\(targets)")
        let forwarded = allowing.origin.requests.flatMap { $0.headers.map(\.value) }
        XCTAssertFalse(forwarded.contains { $0.contains(token) }, "the token is not forwarded upstream")
    }

    /// A token longer than `JWTFeedAuthorizer.maxTokenBytes` is refused before anything decodes it.
    func testAnOverlongTokenIsRefusedUndecoded() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start(fixture)
        // Validly signed: without the bound it would be let in.
        let long = try await fixture.token(subject: String(repeating: "u", count: JWTFeedAuthorizer.maxTokenBytes))
        XCTAssertLessThan(long.utf8.count, 16 * 1024, "within max_header_bytes, so the gate is what refuses it")
        let answer = try await self.refusal(harness, "/prices", headers: [("Authorization", "Bearer \(long)")])
        XCTAssertEqual(answer.status, 401)
        XCTAssertTrue(answer.body.contains("\"malformed\""), answer.body)
    }

    func testTemplateGrantsAllowTheirValuesOnly() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start(fixture)
        let token = try await fixture.token(feeds: ["/rooms/7"])
        try await self.assertStreams(
            harness,
            "/rooms/7",
            headers: [("Authorization", "Bearer \(token)")],
            feed: "/rooms/7"
        )
        let answer = try await self.refusal(harness, "/rooms/8", headers: [("Authorization", "Bearer \(token)")])
        XCTAssertEqual(answer.status, 403)
        let any = try await fixture.token(feeds: ["/rooms/{room}"])
        try await self.assertStreams(
            harness,
            "/rooms/8",
            headers: [("Authorization", "Bearer \(any)")],
            feed: "/rooms/8"
        )
    }

    func testOptionalLetsAnonymousInButNeverDowngradesABadCredential() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start(fixture)
        try await self.assertStreams(harness, "/open", headers: [], feed: "/open")
        let expired = try await fixture.token(feeds: ["/open"], expiresIn: -5)
        let answer = try await self.refusal(harness, "/open", headers: [("Cookie", "access_token=\(expired)")])
        XCTAssertEqual(answer.status, 401, "an expired cookie is refused, not treated as anonymous")
        XCTAssertTrue(answer.body.contains("\"expired\""), answer.body)
        let valid = try await fixture.token(feeds: ["/elsewhere"])
        try await self.assertStreams(harness, "/open", headers: [("Authorization", "Bearer \(valid)")], feed: "/open")
    }

    func testRefusalsAreLoggedAsOneSummaryLine() async throws {
        let fixture = try AuthGateFixture()
        let recorder = LogRecorder()
        let harness = try await self.start(fixture, logger: recorder)
        let expired = try await fixture.token(expiresIn: -5)
        for _ in 0..<20 {
            _ = try await self.refusal(harness, "/prices", headers: [("Authorization", "Bearer \(expired)")])
        }
        for _ in 0..<3 { _ = try await self.refusal(harness, "/prices") }
        XCTAssertTrue(recorder.recorded.filter { $0.message.contains("refused") }.isEmpty, "nothing per request")
        harness.gateway.context.access.logSummary(interval: .seconds(10))
        harness.gateway.context.access.logSummary(interval: .seconds(10))
        let lines = recorder.recorded.filter { $0.message == "requests refused by access control" }
        XCTAssertEqual(lines.count, 1, "one line per interval, none for an interval without refusals")
        XCTAssertEqual(lines.first?.metadata["counts"], "feed=/prices refused expired=20 missing=3")
        XCTAssertFalse(recorder.recorded.contains { $0.metadata.values.contains { $0.contains(expired) } })
    }

    /// Over HTTP/2 each stream is checked on its own: a refused stream ends with its JSON answer while the
    /// connection's other streams, with cookies split over several `cookie` fields, go on.
    func testHTTP2StreamsAreCheckedOneByOne() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start(fixture)
        let client = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        self.addTeardownBlock { await client.close() }
        let token = try await fixture.token()
        let allowed = try await client.request(
            "/prices",
            headers: [("cookie", "a=1"), ("cookie", "access_token=\(token)")]
        )
        let refused = try await client.request("/prices")
        let forbidden = try await client.request("/rooms/9", headers: [("authorization", "Bearer \(token)")])

        let refusal = try await refused.waitForEnd()
        XCTAssertEqual(refusal.status, 401)
        XCTAssertEqual(refusal.header("content-type"), ["application/json"])
        XCTAssertEqual(refusal.body, "{\"error\":\"invalid_token\",\"reason\":\"missing\"}\n")
        let other = try await forbidden.waitForEnd()
        XCTAssertEqual(other.status, 403)

        let head = try await allowed.waitForHeaders()
        XCTAssertEqual(head.status, 200)
        try await harness.waitUntilJoined(1)
        _ = harness.origin.publish(data: "over h2")
        let events = try await allowed.waitForEvents(1)
        XCTAssertEqual(events.map(\.data), ["over h2"])
    }
}
