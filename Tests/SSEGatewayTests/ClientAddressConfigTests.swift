import XCTest

@testable import SSEGateway

/// `proxy_protocol`, `trusted_proxies` and `limits.max_clients_per_address` in the config file.
final class ClientAddressConfigTests: XCTestCase {
    func testValues() throws {
        let config = try ConfigFixtures.parse(
            """
            listen:
              - address: 127.0.0.1:8080
                proxy_protocol: true
              - address: 127.0.0.1:8081
            trusted_proxies: [10.0.0.0/8, "fd00::/8", 192.0.2.7]
            limits: { max_clients_per_address: 20 }
            """
        )
        XCTAssertEqual(config.listen.map(\.proxyProtocol), [true, false])
        XCTAssertEqual(config.limits.trustedProxies.cidrs, ["10.0.0.0/8", "fd00::/8", "192.0.2.7/32"])
        XCTAssertEqual(config.limits.maxClientsPerAddress, 20)
    }

    func testDefaults() throws {
        let config = try ConfigFixtures.parse("listen: [{ address: 127.0.0.1:8080 }]\n")
        XCTAssertEqual(config.listen.map(\.proxyProtocol), [false])
        XCTAssertTrue(config.limits.trustedProxies.isEmpty)
        XCTAssertEqual(config.limits.maxClientsPerAddress, 0)
    }

    func testErrorsPointAtTheValue() {
        ConfigFixtures.assertSingleError(
            """
            listen:
              - address: 127.0.0.1:8080
                proxy_protocol: v2
            """,
            line: 3,
            column: 21,
            "listen[0].proxy_protocol: expected true or false, got 'v2'"
        )
        ConfigFixtures.assertSingleError(
            """
            trusted_proxies:
              - 10.0.0.0/8
              - 10.0.0.0/33
            """,
            line: 3,
            column: 5,
            "trusted_proxies[1]: '10.0.0.0/33' is not an IPv4 or IPv6 address or CIDR"
        )
        ConfigFixtures.assertSingleError(
            "trusted_proxies: 10.0.0.0/8\n",
            line: 1,
            column: 18,
            "trusted_proxies: expected a list"
        )
        ConfigFixtures.assertSingleError(
            "limits: { max_clients_per_address: -1 }\n",
            line: 1,
            column: 36,
            "limits.max_clients_per_address"
        )
    }
}
