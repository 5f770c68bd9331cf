import NIOHTTP1
import XCTest

@testable import SSEGateway

/// `trusted_proxies` as plain values: CIDR matching (IPv4, IPv6, IPv4-mapped), the right-to-left walk of
/// `X-Forwarded-For` and RFC 7239 `Forwarded`, and the headers of an untrusted peer ignored.
final class TrustedProxiesTests: XCTestCase {
    private let trusted = TrustedProxies(["10.0.0.0/8", "192.0.2.7", "fd00::/8"])!

    private func client(_ connection: String?, _ headers: [(String, String)]) -> String? {
        self.trusted.clientAddress(connection: connection, headers: HTTPHeaders(headers))
    }

    func testNetworks() throws {
        let network = try XCTUnwrap(IPNetwork("10.1.2.3/8"))
        XCTAssertEqual(network.description, "10.0.0.0/8")
        XCTAssertTrue(network.contains(try XCTUnwrap(IPAddress("10.255.0.1"))))
        XCTAssertFalse(network.contains(try XCTUnwrap(IPAddress("11.0.0.1"))))
        XCTAssertTrue(network.contains(try XCTUnwrap(IPAddress("::ffff:10.0.0.1"))), "IPv4-mapped is IPv4")
        XCTAssertFalse(network.contains(try XCTUnwrap(IPAddress("fd00::1"))))
        let v6 = try XCTUnwrap(IPNetwork("2001:db8:abcd::/45"))
        XCTAssertTrue(v6.contains(try XCTUnwrap(IPAddress("2001:db8:abcf:ffff::1"))))
        XCTAssertFalse(v6.contains(try XCTUnwrap(IPAddress("2001:db8:abd0::1"))))
        XCTAssertEqual(IPNetwork("192.0.2.7")?.description, "192.0.2.7/32")
        XCTAssertEqual(IPNetwork("::/0")?.prefixLength, 0)
        for bad in [
            "10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0/8", "10.0.0.0/8/8", "host/8", "", "/8", "10.0.0.0/+8",
        ] {
            XCTAssertNil(IPNetwork(bad), bad)
        }
    }

    func testAnUntrustedPeersHeadersAreIgnored() {
        XCTAssertEqual(self.client("203.0.113.9", [("X-Forwarded-For", "1.2.3.4")]), "203.0.113.9")
        XCTAssertEqual(self.client("203.0.113.9", [("Forwarded", "for=1.2.3.4")]), "203.0.113.9")
        XCTAssertEqual(
            TrustedProxies().clientAddress(connection: "10.0.0.1", headers: ["X-Forwarded-For": "1.2.3.4"]),
            "10.0.0.1"
        )
        XCTAssertNil(self.client(nil, [("X-Forwarded-For", "1.2.3.4")]))
    }

    func testXForwardedForIsWalkedFromTheRightSkippingTrustedHops() {
        // A client's own spoofed entry on the left is never reached: the first untrusted from the right wins.
        XCTAssertEqual(
            self.client("10.0.0.1", [("X-Forwarded-For", "6.6.6.6, 198.51.100.20, 10.9.9.9")]),
            "198.51.100.20"
        )
        XCTAssertEqual(self.client("10.0.0.1", [("X-Forwarded-For", "198.51.100.20")]), "198.51.100.20")
        // Two header lines are one list.
        XCTAssertEqual(
            self.client("10.0.0.1", [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.20, 192.0.2.7")]),
            "198.51.100.20"
        )
        // Every hop trusted: the leftmost.
        XCTAssertEqual(self.client("10.0.0.1", [("X-Forwarded-For", "10.0.0.3, 10.0.0.2")]), "10.0.0.3")
        // A hop that is no address stops the walk at the last one known.
        XCTAssertEqual(self.client("10.0.0.1", [("X-Forwarded-For", "198.51.100.20, unknown, 10.0.0.2")]), "10.0.0.2")
        XCTAssertEqual(self.client("10.0.0.1", [("X-Forwarded-For", "garbage")]), "10.0.0.1")
        // IPv6, bare and bracketed with a port; an IPv4 with a port.
        XCTAssertEqual(self.client("fd00::1", [("X-Forwarded-For", "2001:db8::1")]), "2001:db8::1")
        XCTAssertEqual(self.client("fd00::1", [("X-Forwarded-For", "[2001:db8::1]:4711")]), "2001:db8::1")
        XCTAssertEqual(self.client("10.0.0.1", [("X-Forwarded-For", "198.51.100.20:5000")]), "198.51.100.20")
        // No header from a trusted peer: the peer.
        XCTAssertEqual(self.client("10.0.0.1", []), "10.0.0.1")
        XCTAssertEqual(self.client("::ffff:10.0.0.1", []), "10.0.0.1")
    }

    func testForwardedTakesPrecedenceAndItsNodesAreParsed() {
        XCTAssertEqual(
            self.client(
                "10.0.0.1",
                [("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https")]
            ),
            "2001:db8:cafe::17"
        )
        XCTAssertEqual(
            self.client("10.0.0.1", [("Forwarded", "for=192.0.2.43, for=198.51.100.17;by=203.0.113.60;proto=http")]),
            "198.51.100.17"
        )
        XCTAssertEqual(self.client("10.0.0.1", [("Forwarded", "For=\"198.51.100.17:80\"")]), "198.51.100.17")
        XCTAssertEqual(self.client("10.0.0.1", [("Forwarded", "for=6.6.6.6, for=10.1.1.1")]), "6.6.6.6")
        // A quoted comma or semicolon does not split.
        XCTAssertEqual(
            self.client("10.0.0.1", [("Forwarded", "for=198.51.100.17;x=\"a,b;c\", for=10.1.1.1")]),
            "198.51.100.17"
        )
        // Obfuscated or unknown: stop at the last known address.
        XCTAssertEqual(self.client("10.0.0.1", [("Forwarded", "for=_hidden, for=10.1.1.1")]), "10.1.1.1")
        XCTAssertEqual(self.client("10.0.0.1", [("Forwarded", "for=unknown")]), "10.0.0.1")
        XCTAssertEqual(self.client("10.0.0.1", [("Forwarded", "proto=https")]), "10.0.0.1")
        XCTAssertEqual(self.client("10.0.0.1", [("Forwarded", "for=\"[2001:db8::1]junk\"")]), "10.0.0.1")
        XCTAssertEqual(self.client("10.0.0.1", [("Forwarded", "for=\"198.51.100.17")]), "10.0.0.1")
    }
}
