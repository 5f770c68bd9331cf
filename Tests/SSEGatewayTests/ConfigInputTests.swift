import Foundation
import NIOConcurrencyHelpers
import NIOCore
import XCTest

@testable import SSEGateway

/// Config input that once hung or slowed `ssegate check`, or was refused for no good reason: a FIFO where a
/// certificate should be, a list of 10,000 feeds, a file that starts with a UTF-8 byte order mark.
final class ConfigInputTests: XCTestCase {
    /// Opening a FIFO blocks until a writer comes; the loader must refuse it from `stat` alone, at once.
    func testFIFOWhereAFileShouldBeIsAnErrorNotAHang() throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        try ConfigFixtures.touch("key.pem", in: directory)
        let fifo = directory + "/cert.pem"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0, String(cString: strerror(errno)))
        let yaml = """
            listen:
              - address: :8443
                tls:
                  certificate: cert.pem
                  private_key: key.pem
            defaults:
              upstream:
                tls: { ca: cert.pem }
            feeds:
              - path: /a
                upstream: { url: https://up/a }
            """
        let result = NIOLockedValueBox<[ConfigError]?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            do {
                _ = try ConfigLoader.parse(yaml: yaml, file: "test.yaml", baseDirectory: directory, environment: [:])
                result.withLockedValue { $0 = [] }
            } catch let error as ConfigLoadError {
                result.withLockedValue { $0 = error.errors }
            } catch {
                result.withLockedValue { $0 = [ConfigError(file: "?", line: 0, column: 0, message: "\(error)")] }
            }
            done.signal()
        }
        thread.start()
        let started = NIODeadline.now()
        guard done.wait(timeout: .now() + 10) == .success else {
            // Let the blocked open return (a writer arrives and leaves) so the thread can finish.
            let writer = open(fifo, O_WRONLY | O_NONBLOCK)
            if writer >= 0 { close(writer) }
            _ = done.wait(timeout: .now() + 2)
            return XCTFail("loading a config naming a FIFO did not return within 10 s")
        }
        // A FIFO blocks its reader until a writer comes, i.e. forever here: 5 s tells that from a slow machine.
        XCTAssertLessThan((NIODeadline.now() - started).nanoseconds, 5_000_000_000)
        let errors = try XCTUnwrap(result.withLockedValue { $0 })
        XCTAssertEqual(errors.map { "\($0.line):\($0.column)" }, ["4:20", "8:16"], "\(errors)")
        for error in errors {
            XCTAssertTrue(
                error.message.contains(
                    "'cert.pem' (resolved to '\(directory)/cert.pem') is a FIFO (named pipe), not a regular file"
                ),
                error.message
            )
        }
    }

    /// Checking a feed list takes time linear in its length: 10,000 feeds take about ten times as long as
    /// 1,000 (the duplicate check used to compare every feed with every earlier one: 8.8 s for 10,000 in a
    /// release build, 100 s in a debug build, about 80 times the time for 1,000). A ratio, not a fixed bound,
    /// so that a machine busy with other work does not fail it.
    func testFeedListsLoadInLinearTime() throws {
        func feeds(_ count: Int) -> String {
            var yaml = "feeds:\n"
            for index in 0..<count {
                yaml += "  - path: /feed/\(index)\n    upstream: { url: http://up/\(index) }\n"
            }
            // And one duplicate at the end, still found, naming the first one's line.
            return yaml + "  - path: /feed/7\n    upstream: { url: http://up/again }\n"
        }
        func bestTime(_ count: Int, runs: Int) -> Double {
            let yaml = feeds(count)
            var best = Double.infinity
            for _ in 0..<runs {
                let started = NIODeadline.now()
                let errors = ConfigFixtures.errors(yaml)
                best = min(best, Double((NIODeadline.now() - started).nanoseconds) / 1e9)
                XCTAssertEqual(errors.map(\.line), [count * 2 + 2], "\(errors)")
                XCTAssertTrue(
                    errors.first?.message.contains("duplicate path '/feed/7' (first used by feeds[7], line 16)")
                        ?? false,
                    "\(errors)"
                )
            }
            return best
        }
        let small = bestTime(1_000, runs: 3)
        let large = bestTime(10_000, runs: 1)
        XCTAssertLessThan(large / small, 30, "1,000 feeds: \(small) s, 10,000 feeds: \(large) s: not linear")
        XCTAssertLessThan(large, 20, "10,000 feeds took \(large) s (about 2 s in a debug build)")
    }

    /// A UTF-8 byte order mark (Windows editors write one) is not part of the YAML: it is skipped, and the
    /// positions of errors are those an editor shows.
    func testByteOrderMarkIsAccepted() throws {
        let config = try ConfigFixtures.parse(
            "\u{FEFF}log_level: debug\nfeeds:\n  - path: /a\n    upstream: { url: http://up/a }\n"
        )
        XCTAssertEqual(config.logLevel, "debug")
        XCTAssertEqual(config.feeds.map(\.name), ["/a"])
        ConfigFixtures.assertSingleError("\u{FEFF}log_level: loud\n", line: 1, column: 12, "log_level: expected one of")
        ConfigFixtures.assertSingleError(
            "\u{FEFF}limits:\n  max_clientz: 5\n",
            line: 2,
            column: 3,
            "unknown key 'max_clientz'"
        )

        // From a file too, as `ssegate check` reads it.
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        let file = directory + "/bom.yaml"
        try Data([0xEF, 0xBB, 0xBF] + Array("shutdown_timeout: 3s\n".utf8)).write(to: URL(fileURLWithPath: file))
        XCTAssertEqual(try ConfigLoader.load(file: file, environment: [:]).shutdownTimeout, .seconds(3))
    }
}
