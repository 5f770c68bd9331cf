import NIOCore
import XCTest

@testable import SSEGateway

/// Issue 14, items 3 and 4: the connection limits' keys, their defaults, and errors at FILE:LINE:COLUMN.
final class ConnectionLimitsConfigTests: XCTestCase {
    func testDefaults() throws {
        let config = try ConfigFixtures.parse("feeds:\n  - path: /a\n    upstream: { url: http://up/a }\n")
        XCTAssertEqual(config.limits.socketSendBuffer, 64 * 1024)
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
        let autotuned = try ConfigFixtures.parse("defaults:\n  client: { socket_send_buffer: 0 }\n")
        XCTAssertEqual(autotuned.limits.socketSendBuffer, 0)
    }

    func testErrors() {
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
