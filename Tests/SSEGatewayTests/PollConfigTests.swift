import NIOCore
import XCTest

@testable import SSEGateway

/// `delivery:` and `poll:` (SPEC §6a): defaults, per-feed overrides, a listener's `delivery:`, the
/// gateway-wide `max_waiting`, and errors at FILE:LINE:COLUMN.
final class PollConfigTests: XCTestCase {
    func testDefaultsWithoutPollKeys() throws {
        let config = try ConfigFixtures.parse("feeds:\n  - path: /a\n    upstream: { url: http://up/a }\n")
        let settings = config.feeds[0].settings
        XCTAssertEqual(settings.delivery, .stream)
        XCTAssertEqual(settings.poll.retry, .milliseconds(250))
        XCTAssertEqual(settings.poll.timeout, .seconds(20))
        XCTAssertEqual(settings.poll.gather, .milliseconds(50))
        XCTAssertEqual(config.limits.maxPollWaiting, 100_000)
        XCTAssertNil(config.listen[0].delivery)
    }

    func testDefaultsFeedsAndListener() throws {
        let config = try ConfigFixtures.parse(
            """
            listen:
              - address: 127.0.0.1:8080
                delivery: poll
              - address: 127.0.0.1:8081
            defaults:
              delivery: poll
              poll: { retry: 1s, timeout: 10s, gather: 20ms, max_waiting: 500 }
            feeds:
              - path: /a
                upstream: { url: http://up/a }
              - path: /b
                upstream: { url: http://up/b }
                delivery: stream
                poll: { timeout: 5s }
            """
        )
        XCTAssertEqual(config.listen.map(\.delivery), [.poll, nil])
        XCTAssertEqual(config.limits.maxPollWaiting, 500)
        let a = config.feeds[0].settings
        XCTAssertEqual(a.delivery, .poll)
        XCTAssertEqual(a.poll.retry, .seconds(1))
        XCTAssertEqual(a.poll.timeout, .seconds(10))
        XCTAssertEqual(a.poll.gather, .milliseconds(20))
        let b = config.feeds[1].settings
        XCTAssertEqual(b.delivery, .stream)
        XCTAssertEqual(b.poll.timeout, .seconds(5))
        XCTAssertEqual(b.poll.retry, .seconds(1), "inherited key by key")
    }

    func testBadValuesAreReportedWhereWritten() {
        ConfigFixtures.assertSingleError(
            "defaults:\n  delivery: buffered\n",
            line: 2,
            column: 13,
            "expected one of stream, poll"
        )
        ConfigFixtures.assertSingleError(
            "defaults:\n  poll: { timeout: 0s }\n",
            line: 2,
            column: 20,
            "timeout"
        )
        ConfigFixtures.assertSingleError(
            "listen:\n  - address: 127.0.0.1:8080\n    delivery: maybe\n",
            line: 3,
            column: 15,
            "expected one of stream, poll"
        )
        ConfigFixtures.assertSingleError(
            "feeds:\n  - path: /a\n    upstream: { url: http://up/a }\n    poll: { max_waiting: 5 }\n",
            line: 4,
            column: 13,
            "'max_waiting' is gateway-wide: set it in defaults.poll"
        )
    }
}
