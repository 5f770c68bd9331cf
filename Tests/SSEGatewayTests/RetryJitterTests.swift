import NIOCore
import XCTest

@testable import SSEGateway

/// `retry_jitter`: the `retry:` of each stream start is `retry` plus a random share of it up to the
/// jitter, so the clients of a replica that went away come back spread out; 0 % sends exactly `retry`.
final class RetryJitterTests: XCTestCase {
    /// The `retry:` values at the start of `count` streams of a feed with `retry` 1 s and `jitter`.
    private func startRetries(count: Int, jitter: Double?) throws -> [Int] {
        let gateway = EmbeddedGateway(feeds: [
            try EmbeddedGateway.feed("/prices") {
                $0.settings.retry = .seconds(1)
                // `Harness.feed` turns the jitter off for exact assertions; nil tests the default.
                $0.settings.retryJitter = jitter ?? FeedSettings().retryJitter
            }
        ])
        return try (0..<count).map { _ in
            let transport = RecordingTransport(framing: .raw)
            let session = try XCTUnwrap(
                StreamSession.admit(
                    gateway.streamRequest("/prices"),
                    gateway: gateway.context,
                    transport: transport,
                    loop: gateway.loop
                )
            )
            session.begin()
            gateway.loop.run()
            let first = try XCTUnwrap(transport.text.split(separator: "\n").first)
            XCTAssertTrue(first.hasPrefix("retry: "), transport.text)
            session.transportClosed()
            return try XCTUnwrap(Int(first.dropFirst("retry: ".count)))
        }
    }

    func testTheDefaultSpreadsStreamStartsOverRetryToOneAndAHalfRetry() throws {
        XCTAssertEqual(FeedSettings().retryJitter, 0.5, "50 % by default")
        let retries = try self.startRetries(count: 200, jitter: nil)
        XCTAssertEqual(retries.count, 200)
        XCTAssertTrue(retries.allSatisfy { (1000...1500).contains($0) }, "\(retries)")
        XCTAssertGreaterThan(Set(retries).count, 20, "spread out: \(retries.sorted())")
        XCTAssertLessThan(retries.min()!, 1150, "the low end is reached")
        XCTAssertGreaterThan(retries.max()!, 1350, "the high end is reached")
    }

    func testZeroPercentSendsExactlyRetry() throws {
        XCTAssertEqual(Set(try self.startRetries(count: 50, jitter: 0)), [1000])
    }

    // MARK: Config

    func testRetryJitterIsReadInDefaultsAndPerFeed() throws {
        let config = try ConfigFixtures.parse(
            """
            defaults:
              retry_jitter: 20%
            feeds:
              - path: /a
                upstream: { url: "http://origin/a" }
              - path: /b
                upstream: { url: "http://origin/b" }
                retry_jitter: 0%
              - path: /c
                upstream: { url: "http://origin/c" }
                retry_jitter: 12.5%
            """
        )
        XCTAssertEqual(config.feeds.map(\.settings.retryJitter), [0.2, 0, 0.125])
        let plain = try ConfigFixtures.parse("feeds: [{ path: /a, upstream: { url: 'http://origin/a' } }]")
        XCTAssertEqual(plain.feeds.first?.settings.retryJitter, 0.5, "50 % when not written")
    }

    func testBadRetryJitterValuesAreReportedAtTheirPosition() {
        ConfigFixtures.assertSingleError(
            """
            defaults:
              retry_jitter: 150%
            """,
            line: 2,
            column: 17,
            "defaults.retry_jitter: must be at most 100%, got '150%'"
        )
        ConfigFixtures.assertSingleError(
            """
            feeds:
              - path: /a
                upstream: { url: "http://origin/a" }
                retry_jitter: 50
            """,
            line: 4,
            column: 19,
            "feeds[0].retry_jitter: expected a percentage such as 50% (a number from 0 to 100 followed by %), got '50'"
        )
        ConfigFixtures.assertSingleError(
            """
            defaults:
              retry_jitter: -5%
            """,
            line: 2,
            column: 17,
            "expected a percentage"
        )
        ConfigFixtures.assertSingleError(
            """
            retry_jitter: 10%
            """,
            line: 1,
            column: 1,
            "'retry_jitter' belongs under 'defaults:' or a feed"
        )
    }

    func testThePercentageParser() throws {
        XCTAssertEqual(try ConfigValueParser.percentage("0%"), 0)
        XCTAssertEqual(try ConfigValueParser.percentage("100%"), 1)
        XCTAssertEqual(try ConfigValueParser.percentage("7.5%"), 0.075)
        for bad in ["", "%", "50", "50 %", "1e2%", ".5%", "5.%", "100.1%", "x%"] {
            XCTAssertThrowsError(try ConfigValueParser.percentage(bad), bad)
        }
    }
}
