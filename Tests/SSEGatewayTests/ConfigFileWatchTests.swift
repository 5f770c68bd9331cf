import NIOCore
import XCTest

@testable import SSEGateway

/// `reload_on_change`: the keys, and when a poll reloads (as a plain value, no file or timer).
final class ConfigFileWatchTests: XCTestCase {
    func testKeysParseAndDefaultToOff() throws {
        let defaults = try ConfigFixtures.parse("feeds: []\n")
        XCTAssertFalse(defaults.reloadOnChange)
        XCTAssertEqual(defaults.reloadCheckInterval, .seconds(5))
        let watched = try ConfigFixtures.parse("reload_on_change: true\nreload_check_interval: 250ms\n")
        XCTAssertTrue(watched.reloadOnChange)
        XCTAssertEqual(watched.reloadCheckInterval, .milliseconds(250))
    }

    func testBadValuesNameLineAndColumn() {
        ConfigFixtures.assertSingleError("reload_on_change: yes\n", line: 1, column: 19, "true or false")
        ConfigFixtures.assertSingleError(
            "reload_on_change: true\nreload_check_interval: 0s\n",
            line: 2,
            column: 24,
            "greater than 0"
        )
    }

    func testAPollReloadsOnlyWhenTheTextChangedAndOnlyWhenEnabled() {
        var watch = ConfigFileWatch(enabled: true, interval: .seconds(1), text: "a")
        XCTAssertFalse(watch.shouldReload(after: "a"), "same text")
        XCTAssertTrue(watch.shouldReload(after: "b"), "changed text")
        XCTAssertFalse(watch.shouldReload(after: nil), "an unreadable file (mid-swap, removed) is no change")
        // The reload reads "b": rejected or applied, the next poll of "b" does nothing.
        watch.noteRead("b")
        XCTAssertFalse(watch.shouldReload(after: "b"))
        // A file that could not be read at the last reload: any text read later is a change.
        watch.noteRead(nil)
        XCTAssertTrue(watch.shouldReload(after: "b"))

        var off = ConfigFileWatch(enabled: false, interval: .seconds(1), text: "a")
        XCTAssertFalse(off.shouldReload(after: "b"), "reload_on_change: false")
        var config = GatewayConfig()
        config.reloadOnChange = true
        config.reloadCheckInterval = .milliseconds(100)
        off.adopt(config)
        XCTAssertTrue(off.shouldReload(after: "b"), "a reload that turns watching on")
        XCTAssertEqual(off.interval, .milliseconds(100))
    }
}
