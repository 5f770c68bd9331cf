import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// ``ForwardAuthorizer`` against a real backend in the test process (``ForwardAuthBackend``), called directly:
/// what is sent, what answers mean, the cache, coalescing, the bound on calls in flight, and a backend that is
/// down or slow. Every test ends with nothing in flight, queued or flying.
final class ForwardAuthorizerTests: XCTestCase {
    private let prices = try! PathTemplate(parsing: "/prices")
    private let rooms = try! PathTemplate(parsing: "/rooms/{room}")
    private let allowed = AuthDecision.allowed(AuthGrant(recheckAfter: .minutes(5)))

    private var client: HTTPClient!

    override func setUp() async throws {
        // As many pooled connections as calls may be in flight with the default `max_concurrent`.
        self.client = HTTPClient(
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            configuration: ForwardAuthorizer.clientConfiguration(connections: 64)
        )
    }

    override func tearDown() async throws {
        try await self.client.shutdown()
        self.client = nil
    }

    private func authorizer(
        _ url: String,
        _ configure: (inout ForwardAuthConfig) -> Void = { _ in }
    ) throws
        -> ForwardAuthorizer
    {
        var config = ForwardAuthConfig()
        configure(&config)
        return ForwardAuthorizer(url: try UpstreamURL(parsing: url), config: config, httpClient: self.client)
    }

    private static func request(
        cookie: String? = nil,
        path: String = "/prices",
        query: String = "",
        headers: [(String, String)] = []
    ) -> AuthRequest {
        var fields = headers
        if let cookie { fields.append(("Cookie", cookie)) }
        return AuthRequest(headers: HTTPHeaders(fields), path: path, query: query, clientAddress: "192.0.2.7")
    }

    /// Runs `count` authorize calls at once; returns the decisions in call order.
    private func storm(
        _ authorizer: ForwardAuthorizer,
        count: Int,
        feed: PathTemplate? = nil,
        request: @escaping @Sendable (Int) -> AuthRequest
    ) async -> [AuthDecision] {
        let feed = feed ?? self.prices
        return await withTaskGroup(of: (Int, AuthDecision).self) { group in
            for index in 0..<count {
                group.addTask { (index, await authorizer.authorize(request(index), feedTemplate: feed)) }
            }
            var decisions = [AuthDecision?](repeating: nil, count: count)
            for await (index, decision) in group { decisions[index] = decision }
            return decisions.map { $0! }
        }
    }

    private func assertIdle(_ authorizer: ForwardAuthorizer, file: StaticString = #filePath, line: UInt = #line) {
        let stats = authorizer.stats
        XCTAssertEqual(stats.inFlight, 0, "calls in flight", file: file, line: line)
        XCTAssertEqual(stats.waiting, 0, "flights waiting for a slot", file: file, line: line)
        XCTAssertEqual(stats.flights, 0, "flights", file: file, line: line)
    }

    func testSendsCredentialsPathAndAddressButNeverTheQueryToken() async throws {
        let backend = try await ForwardAuthBackend.start { _ in .init() }
        let authorizer = try self.authorizer(backend.url)
        let request = Self.request(
            path: "/rooms/42",
            query: "access_token=SECRET&x=1",
            headers: [
                ("Cookie", "session=abc"), ("cookie", "theme=dark"), ("Authorization", "Bearer t1"),
                ("Authorization", "Basic dXNlcjpwdw=="), ("X-Other", "not forwarded"),
            ]
        )
        let decision = await authorizer.authorize(request, feedTemplate: self.rooms)
        XCTAssertEqual(decision, self.allowed)
        let seen = try XCTUnwrap(backend.snapshot.seen.first)
        XCTAssertEqual(seen.uri, "/check")
        XCTAssertEqual(seen.headers["Cookie"], ["session=abc; theme=dark"])
        XCTAssertEqual(seen.headers["Authorization"], ["Bearer t1", "Basic dXNlcjpwdw=="])
        XCTAssertEqual(seen.headers["X-Original-URI"], ["/rooms/42"])
        XCTAssertEqual(seen.headers["X-Original-Method"], ["GET"])
        XCTAssertEqual(seen.headers["X-Forwarded-For"], ["192.0.2.7"])
        XCTAssertEqual(seen.headers["X-Other"], [])
        XCTAssertFalse("\(seen.uri) \(seen.headers)".contains("SECRET"))
        self.assertIdle(authorizer)
        try await backend.stop()
    }

    /// Issue 11's storm: 1,000 clients with 10 distinct cookies → at most 10 calls within the TTL, and a second
    /// wave is served from the cache.
    func testThousandClientsTenCookiesMakeTenCalls() async throws {
        let backend = try await ForwardAuthBackend.start { _ in .init(delay: .milliseconds(100)) }
        let authorizer = try self.authorizer(backend.url)
        let first = await self.storm(authorizer, count: 1_000) { Self.request(cookie: "session=\($0 % 10)") }
        XCTAssertEqual(first.filter { $0 == self.allowed }.count, 1_000)
        XCTAssertEqual(backend.snapshot.calls, 10)
        let second = await self.storm(authorizer, count: 1_000) { Self.request(cookie: "session=\($0 % 10)") }
        XCTAssertEqual(second.filter { $0 == self.allowed }.count, 1_000)
        XCTAssertEqual(backend.snapshot.calls, 10, "within the TTL nothing is asked again")
        let stats = authorizer.stats
        XCTAssertEqual(stats.backendCalls, 10)
        XCTAssertEqual(stats.cacheHits + stats.coalesced, 1_990)
        XCTAssertLessThanOrEqual(backend.snapshot.connections, 10, "keep-alive connections from the pool")
        self.assertIdle(authorizer)
        try await backend.stop()
    }

    func testAnswerIsAskedAgainAfterTTL() async throws {
        let backend = try await ForwardAuthBackend.start { _ in .init() }
        let authorizer = try self.authorizer(backend.url) { $0.ttl = .milliseconds(300) }
        for _ in 0..<3 { _ = await authorizer.authorize(Self.request(cookie: "s=1"), feedTemplate: self.prices) }
        XCTAssertEqual(backend.snapshot.calls, 1)
        try await Task.sleep(nanoseconds: 400_000_000)
        let decision = await authorizer.authorize(Self.request(cookie: "s=1"), feedTemplate: self.prices)
        XCTAssertEqual(decision, self.allowed)
        XCTAssertEqual(backend.snapshot.calls, 2)
        try await backend.stop()
    }

    func testRefusalsAreMappedAndCached() async throws {
        let backend = try await ForwardAuthBackend.start { seen in
            switch seen.headers.first(name: "Cookie") {
            case "s=expired": .init(status: .unauthorized)
            case "s=other-team": .init(status: .forbidden)
            default: .init()
            }
        }
        let authorizer = try self.authorizer(backend.url)
        for _ in 0..<3 {
            let expired = await authorizer.authorize(Self.request(cookie: "s=expired"), feedTemplate: self.prices)
            XCTAssertEqual(expired, .refused(AuthRefusal(status: 401, reason: "forward_401")))
            let other = await authorizer.authorize(Self.request(cookie: "s=other-team"), feedTemplate: self.prices)
            XCTAssertEqual(other, .refused(AuthRefusal(status: 403, reason: "forward_403")))
        }
        XCTAssertEqual(backend.snapshot.calls, 2, "refusals are cached too")
        let ok = await authorizer.authorize(Self.request(cookie: "s=ok"), feedTemplate: self.prices)
        XCTAssertEqual(ok, self.allowed)
        self.assertIdle(authorizer)
        try await backend.stop()
    }

    func testGrantHeaderNarrowsTheFeeds() async throws {
        let backend = try await ForwardAuthBackend.start { seen in
            seen.headers.first(name: "Cookie") == "s=broken"
                ? .init(headers: [("X-Ssegate-Feeds", "/prices, rooms")])
                : .init(headers: [("X-Ssegate-Feeds", "/prices, /rooms/{room}")])
        }
        let authorizer = try self.authorizer(backend.url)
        let cases: [(String, String, PathTemplate, AuthDecision, UInt)] = [
            ("s=1", "/prices", self.prices, self.allowed, #line),
            ("s=1", "/rooms/42", self.rooms, self.allowed, #line),
            ("s=1", "/orders", try PathTemplate(parsing: "/orders"), .refused(.forbidden), #line),
            (
                "s=broken", "/prices", self.prices, .refused(AuthRefusal(status: 403, reason: "forward_bad_grant")),
                #line
            ),
        ]
        for (cookie, path, feed, expected, line) in cases {
            let decision = await authorizer.authorize(Self.request(cookie: cookie, path: path), feedTemplate: feed)
            XCTAssertEqual(decision, expected, path, line: line)
        }
        try await backend.stop()
    }

    /// Backend down: every client gets `.unavailable`, none is let in, and nothing is cached (the next client
    /// asks again). With ``ForwardAuthorizer/clientConfiguration(connections:connectTimeout:)`` (no retried
    /// connects) that is at once, well before the 2 s `timeout`.
    func testBackendDownIsUnavailableNeverAllowed() async throws {
        let port = try await closedPort()
        let authorizer = try self.authorizer("http://127.0.0.1:\(port)/check")
        let started = NIODeadline.now()
        let decisions = await self.storm(authorizer, count: 200) { Self.request(cookie: "session=\($0 % 5)") }
        XCTAssertLessThan(NIODeadline.now() - started, .seconds(1))
        for decision in decisions {
            XCTAssertEqual(decision, .unavailable(reason: "forward_error"), "while the backend is down")
        }
        // A failure is not cached, so a caller of the storm that arrives after its cookie's call failed makes
        // another (how many depends on scheduling); concurrent ones still share a call.
        let calls = authorizer.stats.backendCalls
        XCTAssertGreaterThanOrEqual(calls, 5)
        XCTAssertLessThan(calls, 200, "coalesced per cookie")
        XCTAssertEqual(authorizer.stats.cachedAnswers, 0)
        _ = await authorizer.authorize(Self.request(cookie: "session=0"), feedTemplate: self.prices)
        XCTAssertEqual(authorizer.stats.backendCalls, calls + 1, "no answer is never cached")
        self.assertIdle(authorizer)
    }

    /// AsyncHTTPClient's default configuration retries connecting until its deadline: still no allow, only a
    /// slower `.unavailable` at `timeout`.
    func testBackendDownWithRetryingClientEndsAtTimeout() async throws {
        let port = try await closedPort()
        let retrying = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        var config = ForwardAuthConfig()
        config.timeout = .milliseconds(300)
        let authorizer = ForwardAuthorizer(
            url: try UpstreamURL(parsing: "http://127.0.0.1:\(port)/check"),
            config: config,
            httpClient: retrying
        )
        let started = NIODeadline.now()
        let decision = await authorizer.authorize(Self.request(cookie: "session=0"), feedTemplate: self.prices)
        // Usually the timeout ends the retried connects; AsyncHTTPClient may also give up first. Never an allow.
        XCTAssertTrue(
            [.unavailable(reason: "forward_timeout"), .unavailable(reason: "forward_error")].contains(decision),
            "\(decision)"
        )
        // Bounded by the 300 ms `timeout`, not AsyncHTTPClient's 10 s connect timeout (slack for a loaded machine).
        XCTAssertLessThan(NIODeadline.now() - started, .seconds(2))
        self.assertIdle(authorizer)
        try await retrying.shutdown()
    }

    func testSlowBackendIsUnavailable() async throws {
        let backend = try await ForwardAuthBackend.start { seen in
            seen.headers.first(name: "Cookie") == "s=stalls-body"
                ? .init(bodyDelay: .seconds(3), body: "ok")
                : .init(delay: .seconds(3))
        }
        let authorizer = try self.authorizer(backend.url) { $0.timeout = .milliseconds(300) }
        for cookie in ["s=slow", "s=stalls-body"] {
            let started = NIODeadline.now()
            let decision = await authorizer.authorize(Self.request(cookie: cookie), feedTemplate: self.prices)
            XCTAssertEqual(decision, .unavailable(reason: "forward_timeout"), cookie)
            XCTAssertLessThan(NIODeadline.now() - started, .seconds(1), cookie)
        }
        XCTAssertEqual(authorizer.stats.cachedAnswers, 0)
        self.assertIdle(authorizer)
        try await backend.stop()
    }

    func testOtherStatusesAreUnavailable() async throws {
        let backend = try await ForwardAuthBackend.start { seen in
            switch seen.headers.first(name: "Cookie") {
            case "s=redirect": .init(status: .found, headers: [("Location", "/login")])
            case "s=missing": .init(status: .notFound)
            default: .init(status: .internalServerError)
            }
        }
        let authorizer = try self.authorizer(backend.url)
        for cookie in ["s=redirect", "s=missing", "s=error", "s=redirect"] {
            let decision = await authorizer.authorize(Self.request(cookie: cookie), feedTemplate: self.prices)
            XCTAssertEqual(decision, .unavailable(reason: "forward_bad_status"), cookie)
        }
        XCTAssertEqual(backend.snapshot.calls, 4, "not cached")
        try await backend.stop()
    }

    /// A client that follows redirects must still not turn a login page's 200 into an allow.
    func testFollowedRedirectIsNotAnAllow() async throws {
        let backend = try await ForwardAuthBackend.start { seen in
            seen.uri == "/check" ? .init(status: .found, headers: [("Location", "/login")]) : .init()
        }
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .follow(max: 3, allowCycles: false)
        let following = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
        let authorizer = ForwardAuthorizer(
            url: try UpstreamURL(parsing: backend.url),
            config: ForwardAuthConfig(),
            httpClient: following
        )
        let decision = await authorizer.authorize(Self.request(cookie: "s=1"), feedTemplate: self.prices)
        XCTAssertEqual(decision, .unavailable(reason: "forward_bad_status"))
        XCTAssertEqual(backend.snapshot.calls, 2, "the redirect was followed")
        try await following.shutdown()
        try await backend.stop()
    }

    /// Issue 11's reconnect storm: 1,000 distinct cookies at once with `max_concurrent: 8`. The backend never
    /// sees more than 8 calls at once (measured on its side); callers that waited past `queue_timeout` get
    /// `forward_saturated`, everyone else is allowed.
    func testMaxConcurrentBoundsCallsInFlight() async throws {
        let backend = try await ForwardAuthBackend.start { _ in .init(delay: .milliseconds(20)) }
        let authorizer = try self.authorizer(backend.url) {
            $0.maxConcurrent = 8
            $0.queueTimeout = .milliseconds(300)
        }
        let decisions = await self.storm(authorizer, count: 1_000) { Self.request(cookie: "session=\($0)") }
        let allowedCount = decisions.filter { $0 == self.allowed }.count
        let saturated = decisions.filter { $0 == .unavailable(reason: "forward_saturated") }.count
        XCTAssertEqual(allowedCount + saturated, 1_000, "nothing but allowed or saturated")
        XCTAssertGreaterThan(allowedCount, 8)
        XCTAssertGreaterThan(saturated, 0)
        XCTAssertLessThanOrEqual(backend.snapshot.maxInFlight, 8)
        XCTAssertEqual(backend.snapshot.calls, allowedCount)
        XCTAssertEqual(authorizer.stats.saturated, saturated)
        XCTAssertLessThanOrEqual(backend.snapshot.connections, 8)
        self.assertIdle(authorizer)
        try await backend.stop()
    }

    func testCacheBoundIsRespected() async throws {
        let backend = try await ForwardAuthBackend.start { _ in .init() }
        let authorizer = try self.authorizer(backend.url) { $0.maxEntries = 5 }
        for index in 0..<20 {
            _ = await authorizer.authorize(Self.request(cookie: "s=\(index)"), feedTemplate: self.prices)
            XCTAssertLessThanOrEqual(authorizer.stats.cachedAnswers, 5)
        }
        XCTAssertEqual(backend.snapshot.calls, 20)
        _ = await authorizer.authorize(Self.request(cookie: "s=19"), feedTemplate: self.prices)
        XCTAssertEqual(backend.snapshot.calls, 20, "the newest is still cached")
        _ = await authorizer.authorize(Self.request(cookie: "s=0"), feedTemplate: self.prices)
        XCTAssertEqual(backend.snapshot.calls, 21, "the oldest was evicted")
        try await backend.stop()
    }

    /// The client that started a call goes away (its task is cancelled): the others waiting on that call still
    /// get its answer, and the answer is cached.
    func testCancelledLeaderDoesNotFailItsFollowers() async throws {
        let backend = try await ForwardAuthBackend.start { _ in .init(delay: .milliseconds(200)) }
        let authorizer = try self.authorizer(backend.url)
        let request = Self.request(cookie: "s=1")
        let prices = self.prices
        let leader = Task { await authorizer.authorize(request, feedTemplate: prices) }
        try await waitUntil(timeout: .seconds(2)) { authorizer.stats.inFlight == 1 }
        let follower = Task { await authorizer.authorize(request, feedTemplate: prices) }
        leader.cancel()
        let followed = await follower.value
        XCTAssertEqual(followed, self.allowed)
        _ = await leader.value
        XCTAssertEqual(authorizer.stats.cachedAnswers, 1)
        XCTAssertEqual(backend.snapshot.calls, 1)
        self.assertIdle(authorizer)
        try await backend.stop()
    }
}
