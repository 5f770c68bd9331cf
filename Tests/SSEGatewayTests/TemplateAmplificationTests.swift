import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Requests for random template values must not hold upstream connections, `max_feeds` slots or
/// retries against a backend that says the value does not exist (issue 16 finding 11, issue 14 item 5).
final class TemplateAmplificationTests: XCTestCase {
    /// `/rooms/{room}` on an origin that answers 404 for `ghost*` rooms and 410 for `gone*` rooms.
    private func start(
        maxFeeds: Int = 100,
        linger: TimeAmount = .seconds(10),
        configure: @escaping (inout GatewayConfig) -> Void = { _ in }
    ) async throws -> Harness {
        let harness = try await Harness.start(configure: configure) { origin in
            [
                try Harness.feed("/rooms/{room}", upstream: "\(origin)/r/{room}", connect: .onDemand) {
                    $0.maxFeeds = maxFeeds
                    $0.linger = linger
                }
            ]
        }
        harness.origin.behaviourForPath = { path in
            if path.hasPrefix("/r/ghost") { return .status(404) }
            if path.hasPrefix("/r/gone") { return .status(410) }
            return nil
        }
        return harness
    }

    private func get(_ harness: Harness, _ path: String, from address: String? = nil) async throws -> String {
        let request = "GET \(path) HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
        return try await rawExchange(
            port: harness.port,
            request,
            group: harness.clientGroup,
            timeout: .seconds(2),
            from: address
        ).response
    }

    private func openInstances(_ harness: Harness) async throws -> [String] {
        try await harness.metrics().feeds.filter { !$0.retired }.map(\.path)
    }

    func testNewValueTheUpstreamDoesNotHaveGetsItsStatusAndTheInstanceClosesAtOnce() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let missing = try await self.get(harness, "/rooms/ghost1")
        XCTAssertTrue(missing.hasPrefix("HTTP/1.1 404"), missing)
        XCTAssertTrue(missing.contains("Content-Type: text/plain"), missing)
        XCTAssertFalse(missing.contains("text/event-stream"), missing)
        let gone = try await self.get(harness, "/rooms/gone1")
        XCTAssertTrue(gone.hasPrefix("HTTP/1.1 410"), gone)
        let open = try await self.openInstances(harness)
        XCTAssertEqual(open, [], "no instance lingers")
        // The harness backs off 20-200 ms: a retrying upstream would have asked again by now.
        try await Task.sleep(for: .milliseconds(400))
        XCTAssertEqual(
            harness.origin.requests.filter { $0.uri == "/r/ghost1" }.count,
            1,
            "one upstream request, no retry"
        )
        XCTAssertEqual(harness.origin.requests.filter { $0.uri == "/r/gone1" }.count, 1)

        // A value that exists streams as before.
        let real = try await harness.client("/rooms/real")
        let realHead = try await real.waitForHead()
        XCTAssertEqual(realHead.status, .ok)
        try await eventually("upstream open") { harness.origin.openConnections == 1 }
        harness.origin.publish(data: "hello")
        let events = try await real.waitForEvents(1)
        XCTAssertEqual(events.map(\.data), ["hello"])
        await real.close()
    }

    func testRandomMissingRoomsDoNotHoldMaxFeedsSlotsThroughLinger() async throws {
        let harness = try await self.start(maxFeeds: 3, linger: .seconds(10)) {
            $0.limits.maxNewFeedsPerAddressPerSecond = 0
        }
        self.addTeardownBlock { await harness.stop() }
        for index in 0..<8 {
            let response = try await self.get(harness, "/rooms/ghost-\(index)")
            XCTAssertTrue(response.hasPrefix("HTTP/1.1 404"), response)
        }
        var clients: [TestSSEClient] = []
        for index in 0..<3 {
            let client = try await harness.client("/rooms/legit-\(index)")
            let head = try await client.waitForHead()
            XCTAssertEqual(head.status, .ok, "legitimate room \(index)")
            clients.append(client)
        }
        XCTAssertEqual(harness.origin.requests.filter { $0.uri.hasPrefix("/r/ghost") }.count, 8)
        for client in clients { await client.close() }
    }

    func testAnUpstreamThatIsSlowOrFailingStillStreams() async throws {
        // Slow or failing upstreams keep today's behaviour: 200 and keepalives while the upstream retries.
        // A backend that accepts and never answers holds the head back for `connect_timeout` at most.
        let blackhole = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { blackhole.close(promise: nil) }
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/rooms/{room}", upstream: "\(origin)/r/{room}", connect: .onDemand),
                try Harness.feed(
                    "/slow/{room}",
                    upstream: "http://127.0.0.1:\(blackhole.localAddress!.port!)/s/{room}",
                    connect: .onDemand
                ) {
                    $0.settings.upstream.connectTimeout = .milliseconds(300)
                },
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        harness.origin.behaviourForPath = { path in path.hasPrefix("/r/broken") ? .status(500) : nil }
        let started = NIODeadline.now()
        let slow = try await harness.client("/slow/a")
        let slowHead = try await slow.waitForHead()
        XCTAssertEqual(slowHead.status, .ok)
        XCTAssertGreaterThanOrEqual(
            NIODeadline.now() - started,
            .milliseconds(250),
            "the head waited for the first response"
        )
        let broken = try await harness.client("/rooms/broken")
        let brokenHead = try await broken.waitForHead()
        XCTAssertEqual(brokenHead.status, .ok)
        let open = try await self.openInstances(harness)
        XCTAssertEqual(Set(open), ["/slow/a", "/rooms/broken"])
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertGreaterThan(
            harness.origin.requests.filter { $0.uri == "/r/broken" }.count,
            1,
            "a 500 is retried as before"
        )
        await slow.close()
        await broken.close()
    }

    func testNewInstancesOverTheGatewayRateGet503WithRetryAfter() async throws {
        let harness = try await self.start {
            $0.limits.maxNewFeedsPerSecond = 5
            $0.limits.maxNewFeedsPerAddressPerSecond = 0
        }
        self.addTeardownBlock { await harness.stop() }
        var statuses: [Substring: Int] = [:]
        var retryAfters: Set<String> = []
        let started = NIODeadline.now()
        for index in 0..<20 {
            let response = try await self.get(harness, "/rooms/ghost-flood-\(index)")
            statuses[response.prefix(12), default: 0] += 1
            if response.hasPrefix("HTTP/1.1 503"),
                let line = response.split(separator: "\r\n").first(where: { $0.hasPrefix("Retry-After: ") })
            {
                retryAfters.insert(String(line.dropFirst("Retry-After: ".count)))
            }
        }
        // The burst (5) plus 5 per second of the flood: however slow this machine is, the rest are refused.
        let seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        let allowed = 5 + Int(5 * seconds) + 1
        XCTAssertLessThanOrEqual(
            harness.origin.requests.count,
            allowed,
            "the upstream saw at most the burst plus the refill (\(seconds) s)"
        )
        XCTAssertGreaterThanOrEqual(statuses["HTTP/1.1 503", default: 0], 20 - allowed, "\(statuses)")
        XCTAssertLessThan(seconds, 2, "the flood was fast enough to test the rate")
        XCTAssertFalse(retryAfters.isEmpty)
        XCTAssertTrue(
            retryAfters.allSatisfy { (3...6).contains(Int($0) ?? 0) },
            "retry 3s jittered up to 6: \(retryAfters)"
        )
        // An existing instance is never refused by the rate: only new ones count.
        try await Task.sleep(for: .milliseconds(400))
        let real = try await harness.client("/rooms/real")
        let realHead = try await real.waitForHead()
        XCTAssertEqual(realHead.status, .ok)
        for _ in 0..<10 { _ = try await self.get(harness, "/rooms/ghost-more-\(Int.random(in: 0..<1_000_000))") }
        let again = try await harness.client("/rooms/real")
        let againHead = try await again.waitForHead()
        XCTAssertEqual(againHead.status, .ok)
        await real.close()
        await again.close()
    }

    func testOneAddressFloodingNewRoomsDoesNotLockOutOthers() async throws {
        let harness = try await self.start {
            $0.limits.maxNewFeedsPerSecond = 100
            $0.limits.maxNewFeedsPerAddressPerSecond = 5
        }
        self.addTeardownBlock { await harness.stop() }
        var refused = 0
        let started = NIODeadline.now()
        for index in 0..<30 {
            let response = try await self.get(harness, "/rooms/ghost-\(index)", from: "127.0.0.2")
            if response.hasPrefix("HTTP/1.1 503") {
                refused += 1
                XCTAssertTrue(response.contains("from this address"), response)
            }
        }
        let seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        XCTAssertGreaterThanOrEqual(refused, 30 - (5 + Int(5 * seconds) + 1), "burst 5 plus 5/s over \(seconds) s")
        XCTAssertLessThan(seconds, 2, "the flood was fast enough to test the rate")
        // Another address opens new rooms as usual while that one is over its rate.
        for index in 0..<5 {
            let client = try await harness.client("/rooms/legit-\(index)")
            let head = try await client.waitForHead()
            XCTAssertEqual(head.status, .ok)
            await client.close()
        }
    }

    func testLimiterBuckets() {
        var limiter = NewFeedLimiter()
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let rates = NewFeedLimiter.Rates(perSecond: 4, perAddressPerSecond: 2)
        XCTAssertEqual(limiter.admit(address: "a", rates: rates, now: start), .allowed)
        XCTAssertEqual(limiter.admit(address: "a", rates: rates, now: start), .allowed)
        XCTAssertEqual(limiter.admit(address: "a", rates: rates, now: start), .overAddress)
        XCTAssertEqual(limiter.admit(address: "b", rates: rates, now: start), .allowed)
        XCTAssertEqual(limiter.admit(address: "c", rates: rates, now: start), .allowed)
        XCTAssertEqual(limiter.admit(address: "d", rates: rates, now: start), .overGateway)
        // Half a second refills two gateway tokens and one per address.
        let later = start + .milliseconds(500)
        XCTAssertEqual(limiter.admit(address: "a", rates: rates, now: later), .allowed)
        XCTAssertEqual(limiter.admit(address: "a", rates: rates, now: later), .overAddress)
        XCTAssertEqual(limiter.admit(address: "d", rates: rates, now: later), .allowed)
        XCTAssertEqual(limiter.admit(address: "e", rates: rates, now: later), .overGateway)
        // 0 turns a bucket off.
        let off = NewFeedLimiter.Rates(perSecond: 0, perAddressPerSecond: 0)
        for _ in 0..<100 { XCTAssertEqual(limiter.admit(address: "a", rates: off, now: later), .allowed) }
        XCTAssertEqual(limiter.trackedAddresses, 4, "a refused address is remembered only once it has taken a token")
    }
}

/// The new-instance rate keys: parsed, defaulted, and wrong values reported at FILE:LINE:COLUMN.
final class NewFeedLimitConfigTests: XCTestCase {
    func testKeysParseWithDefaultsAndZeroTurnsThemOff() throws {
        let defaults = try ConfigFixtures.parse("limits: { max_clients: 10 }\n")
        XCTAssertEqual(defaults.limits.maxNewFeedsPerSecond, 100)
        XCTAssertEqual(
            defaults.limits.maxNewFeedsPerAddressPerSecond,
            0,
            "off by default: the address is the TCP peer's"
        )
        let set = try ConfigFixtures.parse(
            "limits:\n  max_new_feeds_per_second: 0\n  max_new_feeds_per_address_per_second: 3\n"
        )
        XCTAssertEqual(set.limits.maxNewFeedsPerSecond, 0)
        XCTAssertEqual(set.limits.maxNewFeedsPerAddressPerSecond, 3)
    }

    func testWrongValuesAreReportedWhereTheyAre() {
        ConfigFixtures.assertSingleError(
            "limits:\n  max_new_feeds_per_second: -1\n",
            line: 2,
            column: 29,
            "limits.max_new_feeds_per_second: must be at least 0, got -1"
        )
        ConfigFixtures.assertSingleError(
            "limits:\n  max_new_feeds_per_address_per_second: lots\n",
            line: 2,
            column: 41,
            "limits.max_new_feeds_per_address_per_second:"
        )
    }
}
