import NIOCore
import XCTest

@testable import SSEGateway

/// The scalar forms on their own: durations, sizes, numbers, addresses, `${ENV}`, suggestions.
final class ConfigValueParserTests: XCTestCase {
    func testDurationsInEveryAcceptedForm() throws {
        let cases: [(String, TimeAmount)] = [
            ("0", .zero),
            ("0s", .zero),
            ("250ms", .milliseconds(250)),
            ("15s", .seconds(15)),
            ("1.5s", .milliseconds(1500)),
            ("0.1s", .milliseconds(100)),
            ("5m", .minutes(5)),
            ("1h", .hours(1)),
            ("2.25h", .minutes(135)),
            ("1.5ms", .microseconds(1500)),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(try ConfigValueParser.duration(text), expected, text)
        }
    }

    func testDurationsRejectedWithTheAcceptedForm() {
        for text in ["15", "15 sec", "15sec", "-1s", "1.s", ".5s", "1.2.3s", "s", "", "1d", "10us", "1e3ms"] {
            XCTAssertThrowsError(try ConfigValueParser.duration(text), text) { error in
                XCTAssertEqual(
                    (error as? ConfigValueError)?.message,
                    "expected \(ConfigValueParser.durationForm), got '\(text)'"
                )
            }
        }
        XCTAssertThrowsError(try ConfigValueParser.duration("99999999999h")) { error in
            XCTAssertEqual((error as? ConfigValueError)?.message, "duration '99999999999h' is too large")
        }
    }

    func testSizes() throws {
        let cases: [(String, Int)] = [
            ("0", 0), ("65536", 65_536), ("16KiB", 16_384), ("8MiB", 8_388_608), ("1GiB", 1_073_741_824),
            ("64KB", 64_000), ("2MB", 2_000_000), ("1GB", 1_000_000_000),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(try ConfigValueParser.size(text), expected, text)
        }
        for text in ["8 MiB", "8mib", "1.5MiB", "KiB", "-1", "8B", "8TiB", ""] {
            XCTAssertThrowsError(try ConfigValueParser.size(text), text) { error in
                XCTAssertEqual(
                    (error as? ConfigValueError)?.message,
                    "expected \(ConfigValueParser.sizeForm), got '\(text)'"
                )
            }
        }
        XCTAssertThrowsError(try ConfigValueParser.size("9999999999999GiB")) { error in
            XCTAssertEqual((error as? ConfigValueError)?.message, "size '9999999999999GiB' is too large")
        }
    }

    func testIntegers() throws {
        XCTAssertEqual(try ConfigValueParser.integer("100000"), 100_000)
        XCTAssertEqual(try ConfigValueParser.integer("-5"), -5)
        for text in ["1_000", "1e3", "1.0", "", "-", "ten"] {
            XCTAssertThrowsError(try ConfigValueParser.integer(text), text) { error in
                XCTAssertEqual((error as? ConfigValueError)?.message, "expected a whole number, got '\(text)'")
            }
        }
    }

    func testHostPorts() throws {
        XCTAssertEqual(try ConfigValueParser.hostPort("0.0.0.0:8080"), HostPort(host: "0.0.0.0", port: 8080))
        XCTAssertEqual(try ConfigValueParser.hostPort(":80"), HostPort(host: "0.0.0.0", port: 80))
        XCTAssertEqual(try ConfigValueParser.hostPort("[::]:8443"), HostPort(host: "::", port: 8443))
        XCTAssertEqual(try ConfigValueParser.hostPort("[fe80::1]:1"), HostPort(host: "fe80::1", port: 1))
        XCTAssertEqual(
            try ConfigValueParser.hostPort("gateway.local:65535"),
            HostPort(host: "gateway.local", port: 65535)
        )

        let rejected: [(String, String)] = [
            ("8080", "expected host:port, [ipv6]:port or :port, got '8080'"),
            ("host:", "port must be a number from 1 to 65535, got '' in 'host:'"),
            ("host:http", "port must be a number from 1 to 65535, got 'http' in 'host:http'"),
            ("host:0", "port must be from 1 to 65535, got 0 in 'host:0'"),
            ("host:65536", "port must be from 1 to 65535, got 65536 in 'host:65536'"),
            ("::1:80", "an IPv6 address must be in brackets, as in [::1]:8080; got '::1:80'"),
            ("[::1:80", "missing ']' after the IPv6 address in '[::1:80'"),
            ("[::1]80", "expected host:port, [ipv6]:port or :port, got '[::1]80'"),
            ("my host:80", "bad host 'my host' in 'my host:80'"),
        ]
        for (text, message) in rejected {
            XCTAssertThrowsError(try ConfigValueParser.hostPort(text), text) { error in
                XCTAssertEqual((error as? ConfigValueError)?.message, message)
            }
        }
    }

    func testEnvironmentExpansion() throws {
        let environment = ["A": "1", "EMPTY": "", "_X9": "x"]
        XCTAssertEqual(try ConfigValueParser.expandEnvironment("no dollars", environment), "no dollars")
        XCTAssertEqual(try ConfigValueParser.expandEnvironment("${A}-${_X9}-${EMPTY}.", environment), "1-x-.")
        XCTAssertEqual(try ConfigValueParser.expandEnvironment("$${A} $A $ {A} $", environment), "${A} $A $ {A} $")
        XCTAssertThrowsError(try ConfigValueParser.expandEnvironment("${NOPE} ${A} ${NADA} ${NOPE}", environment)) {
            error in
            XCTAssertEqual((error as? ConfigValueError)?.message, "environment variables 'NOPE', 'NADA' are not set")
        }
        XCTAssertThrowsError(try ConfigValueParser.expandEnvironment("${9LIVES}", environment)) { error in
            XCTAssertEqual(
                (error as? ConfigValueError)?.message,
                "'${9LIVES}' is not a valid environment variable reference: a name is letters, digits and '_' "
                    + "(write '$${' for a literal '${')"
            )
        }
    }

    func testSuggestions() {
        let keys = ["retry", "keepalive", "padding", "compression", "replay", "client", "upstream", "cors"]
        XCTAssertEqual(ConfigValueParser.suggestion(for: "keepalvie", among: keys), "keepalive")
        XCTAssertEqual(ConfigValueParser.suggestion(for: "Retry", among: keys), "retry")
        XCTAssertEqual(ConfigValueParser.suggestion(for: "upstreams", among: keys), "upstream")
        XCTAssertEqual(ConfigValueParser.suggestion(for: "cor", among: keys), "cors")
        XCTAssertNil(ConfigValueParser.suggestion(for: "backend", among: keys))
        XCTAssertNil(ConfigValueParser.suggestion(for: "xy", among: keys))
        XCTAssertEqual(ConfigValueParser.editDistance("keepalvie", "keepalive"), 1)
        XCTAssertEqual(ConfigValueParser.editDistance("", "abc"), 3)
    }

    func testDurationFormattingForMessages() {
        XCTAssertEqual(ConfigLoader.format(.hours(2)), "2h")
        XCTAssertEqual(ConfigLoader.format(.seconds(90)), "90s")
        XCTAssertEqual(ConfigLoader.format(.minutes(1)), "1m")
        XCTAssertEqual(ConfigLoader.format(.milliseconds(250)), "250ms")
        XCTAssertEqual(ConfigLoader.format(.nanoseconds(7)), "7ns")
        XCTAssertEqual(ConfigLoader.format(.zero), "0")
    }
}
