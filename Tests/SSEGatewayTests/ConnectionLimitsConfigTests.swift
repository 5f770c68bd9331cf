import NIOCore
import XCTest

@testable import SSEGateway

/// Issue 14, items 3 and 4: the connection limits' keys, their defaults, and errors at FILE:LINE:COLUMN.
final class ConnectionLimitsConfigTests: XCTestCase {
    func testDefaults() throws {
        let config = try ConfigFixtures.parse("feeds:\n  - path: /a\n    upstream: { url: http://up/a }\n")
        XCTAssertEqual(config.limits.socketSendBuffer, 64 * 1024)
        XCTAssertEqual(config.limits.newConnectionsPerSecond, 0)
        XCTAssertEqual(config.limits.tlsHandshakesPerSecond, 0)
        XCTAssertNil(config.limits.tlsHandshakeTimeout, "the header timeout")
        XCTAssertEqual(config.limits.maxHeaderCount, 100)
        XCTAssertNil(config.limits.idleConnectionTimeout, "the header timeout")
    }

    func testValues() throws {
        let config = try ConfigFixtures.parse(
            """
            defaults:
              client: { max_queue: 1MiB, socket_send_buffer: 32KiB }
            feeds:
              - path: /a
                upstream: { url: http://up/a }
            """
        )
        XCTAssertEqual(config.limits.socketSendBuffer, 32 * 1024)
        let limits = try ConfigFixtures.parse(
            "limits: { new_connections_per_second: 2000, tls_handshakes_per_second: 500, tls_handshake_timeout: 3s, max_header_count: 50, idle_connection_timeout: 75s }\n"
        ).limits
        XCTAssertEqual(limits.newConnectionsPerSecond, 2000)
        XCTAssertEqual(limits.tlsHandshakesPerSecond, 500)
        XCTAssertEqual(limits.tlsHandshakeTimeout, .seconds(3))
        XCTAssertEqual(limits.maxHeaderCount, 50)
        XCTAssertEqual(limits.idleConnectionTimeout, .seconds(75))
        let autotuned = try ConfigFixtures.parse("defaults:\n  client: { socket_send_buffer: 0 }\n")
        XCTAssertEqual(autotuned.limits.socketSendBuffer, 0)
    }

    func testErrors() {
        ConfigFixtures.assertSingleError(
            "limits:\n  max_header_count: 10\n",
            line: 2,
            column: 21,
            "limits.max_header_count: must be at least 20, got 10"
        )
        ConfigFixtures.assertSingleError(
            "limits:\n  tls_handshake_timeout: 0s\n",
            line: 2,
            column: 26,
            "limits.tls_handshake_timeout: must be greater than 0, got '0s'"
        )
        ConfigFixtures.assertSingleError(
            "limits:\n  new_connections_per_second: -1\n",
            line: 2,
            column: 31,
            "limits.new_connections_per_second: must be at least 0, got -1"
        )
        ConfigFixtures.assertSingleError(
            "limits:\n  tls_handshakes_per_second: many\n",
            line: 2,
            column: 30,
            "limits.tls_handshakes_per_second: expected a whole number"
        )
        ConfigFixtures.assertSingleError(
            "defaults:\n  client: { socket_send_buffer: 1000 }\n",
            line: 2,
            column: 33,
            "defaults.client.socket_send_buffer: must be 0 (the kernel's autotuning) or at least 4KiB"
        )
        ConfigFixtures.assertSingleError(
            "feeds:\n  - path: /a\n    upstream: { url: http://up/a }\n    client: { socket_send_buffer: 8KiB }\n",
            line: 4,
            column: 15,
            "'socket_send_buffer' is set when a connection is accepted, before its feed is known: set it in defaults.client"
        )
    }
}
