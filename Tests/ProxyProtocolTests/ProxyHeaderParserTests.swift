import NIOCore
import ProxyProtocol
import XCTest

/// The PROXY protocol parser as plain values: every header of both versions HAProxy sends, every prefix of
/// each (which must ask for more bytes, never fail or succeed early), and garbage.
final class ProxyHeaderParserTests: XCTestCase {
    /// Parses `bytes` behind a non-zero reader index, so only readable bytes count.
    private func parse(_ bytes: [UInt8], maxLength: Int = ProxyHeaderParser.v2MaxLength) -> ProxyHeaderParser.Result {
        var buffer = ByteBuffer()
        buffer.writeString("xx")
        buffer.moveReaderIndex(forwardBy: 2)
        buffer.writeBytes(bytes)
        return ProxyHeaderParser.parse(buffer, maxLength: maxLength)
    }

    private func header(
        _ bytes: [UInt8],
        file: StaticString = #filePath,
        line: UInt = #line
    ) -> ProxyHeader? {
        guard case .parsed(let header) = self.parse(bytes) else {
            XCTFail("expected a header, got \(self.parse(bytes))", file: file, line: line)
            return nil
        }
        return header
    }

    /// Every proper prefix of `bytes` needs more bytes.
    private func assertEveryPrefixNeedsMore(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
        for end in 0..<bytes.count {
            XCTAssertEqual(
                self.parse(Array(bytes[..<end])),
                .needMoreBytes,
                "prefix of \(end) bytes",
                file: file,
                line: line
            )
        }
    }

    private func isInvalid(_ result: ProxyHeaderParser.Result) -> Bool {
        if case .invalid = result { return true }
        return false
    }

    // MARK: v1

    func testV1TCP4() throws {
        let bytes = Array("PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n".utf8)
        let header = try XCTUnwrap(self.header(bytes + Array("GET / HTTP/1.1\r\n".utf8)))
        XCTAssertEqual(header.version, 1)
        XCTAssertEqual(header.source?.ipAddress, "192.0.2.10")
        XCTAssertEqual(header.source?.port, 56324)
        XCTAssertEqual(header.destination?.ipAddress, "198.51.100.1")
        XCTAssertEqual(header.destination?.port, 443)
        XCTAssertEqual(header.length, bytes.count)
        self.assertEveryPrefixNeedsMore(bytes)
    }

    func testV1TCP6() throws {
        let bytes = Array("PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n".utf8)
        let header = try XCTUnwrap(self.header(bytes))
        XCTAssertEqual(header.source?.ipAddress, "2001:db8::1")
        XCTAssertEqual(header.source?.port, 65535)
        XCTAssertEqual(header.destination?.port, 0)
        self.assertEveryPrefixNeedsMore(bytes)
    }

    func testV1UnknownHasNoAddressAndIgnoresTheRest() throws {
        let bytes = Array("PROXY UNKNOWN ffff::1 whatever\r\n".utf8)
        let header = try XCTUnwrap(self.header(bytes))
        XCTAssertNil(header.source)
        XCTAssertEqual(header.length, bytes.count)
        XCTAssertEqual(try XCTUnwrap(self.header(Array("PROXY UNKNOWN\r\n".utf8))).length, 15)
    }

    func testV1OfTheMaximumLengthParses() throws {
        // The spec's worst case: TCP6 with two full-length addresses and 5-digit ports is 104 bytes; UNKNOWN
        // may carry up to the 107-byte bound.
        let padding = String(repeating: "x", count: 107 - "PROXY UNKNOWN \r\n".utf8.count)
        let bytes = Array("PROXY UNKNOWN \(padding)\r\n".utf8)
        XCTAssertEqual(bytes.count, 107)
        XCTAssertEqual(try XCTUnwrap(self.header(bytes)).length, 107)
        XCTAssertTrue(self.isInvalid(self.parse(Array("PROXY UNKNOWN \(padding)x\r\n".utf8))))
        // No line end within 107 bytes: invalid at once, without waiting for more.
        let noEnd = Array("PROXY UNKNOWN ".utf8) + Array(repeating: UInt8(ascii: "x"), count: 107 - 14)
        XCTAssertTrue(self.isInvalid(self.parse(noEnd)))
        XCTAssertEqual(self.parse(Array(noEnd.dropLast())), .needMoreBytes)
    }

    func testV1Malformed() {
        let bad = [
            "PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\n",  // LF without CR
            "PROXY TCP4 192.0.2.10 198.51.100.1 56324\r\n",  // a field missing
            "PROXY TCP4 192.0.2.10 198.51.100.1 56324 443 7\r\n",  // one too many
            "PROXY TCP4  192.0.2.10 198.51.100.1 56324 443\r\n",  // double space
            "PROXY TCP4 2001:db8::1 198.51.100.1 56324 443\r\n",  // IPv6 in TCP4
            "PROXY TCP6 192.0.2.10 2001:db8::2 56324 443\r\n",  // IPv4 in TCP6
            "PROXY TCP4 192.0.2 198.51.100.1 56324 443\r\n",
            "PROXY TCP4 localhost 198.51.100.1 56324 443\r\n",
            "PROXY TCP4 192.0.2.10 198.51.100.1 65536 443\r\n",
            "PROXY TCP4 192.0.2.10 198.51.100.1 0443 443\r\n",
            "PROXY TCP4 192.0.2.10 198.51.100.1 -1 443\r\n",
            "PROXY TCP4 192.0.2.10 198.51.100.1 +1 443\r\n",
            "PROXY UDP4 192.0.2.10 198.51.100.1 1 443\r\n",
            "PROXY\r\n",
            "PROXY \r\n",
            "PROXY TCP4 192.0.2.10 198.51.100.1 1 \u{7F}\r\n",
            "proxy TCP4 192.0.2.10 198.51.100.1 1 2\r\n",
            "GET / HTTP/1.1\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ]
        for text in bad {
            XCTAssertTrue(self.isInvalid(self.parse(Array(text.utf8))), text.debugDescription)
        }
        // A non-ASCII byte inside the line.
        XCTAssertTrue(
            self.isInvalid(self.parse(Array("PROXY TCP4 192.0.2.10 ".utf8) + [0xC3, 0xA9] + Array(" 1 2\r\n".utf8)))
        )
        // Garbage is refused at its first byte, not after 107 of them.
        XCTAssertTrue(self.isInvalid(self.parse([0x16, 0x03, 0x01])))
        XCTAssertTrue(self.isInvalid(self.parse(Array("G".utf8))))
        XCTAssertTrue(self.isInvalid(self.parse(Array("PROXX".utf8))))
    }

    // MARK: v2

    /// A v2 header as HAProxy's `send-proxy-v2` writes it.
    private func v2(
        command: UInt8 = 0x1,
        familyTransport: UInt8,
        addresses: [UInt8],
        tlvs: [UInt8] = [],
        declaredLength: Int? = nil
    ) -> [UInt8] {
        let length = declaredLength ?? (addresses.count + tlvs.count)
        return [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
            + [0x20 | command, familyTransport, UInt8(length >> 8), UInt8(length & 0xFF)] + addresses + tlvs
    }

    private let ipv4Addresses: [UInt8] = [192, 0, 2, 10] + [198, 51, 100, 1] + [0xDC, 0x04] + [0x01, 0xBB]
    private var ipv6Addresses: [UInt8] {
        [0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [1]
            + [0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [2] + [0x12, 0x34] + [0x00, 0x50]
    }

    func testV2ProxyIPv4() throws {
        let bytes = self.v2(familyTransport: 0x11, addresses: self.ipv4Addresses)
        let header = try XCTUnwrap(self.header(bytes + Array("GET".utf8)))
        XCTAssertEqual(header.version, 2)
        XCTAssertEqual(header.source?.ipAddress, "192.0.2.10")
        XCTAssertEqual(header.source?.port, 56324)
        XCTAssertEqual(header.destination?.ipAddress, "198.51.100.1")
        XCTAssertEqual(header.destination?.port, 443)
        XCTAssertEqual(header.length, 28)
        self.assertEveryPrefixNeedsMore(bytes)
    }

    func testV2ProxyIPv6() throws {
        let bytes = self.v2(familyTransport: 0x21, addresses: self.ipv6Addresses)
        let header = try XCTUnwrap(self.header(bytes))
        XCTAssertEqual(header.source?.ipAddress, "2001:db8::1")
        XCTAssertEqual(header.source?.port, 0x1234)
        XCTAssertEqual(header.destination?.ipAddress, "2001:db8::2")
        XCTAssertEqual(header.length, 52)
        self.assertEveryPrefixNeedsMore(bytes)
    }

    func testV2LocalHasNoAddress() throws {
        // HAProxy's health checks with `check-send-proxy` send LOCAL with an UNSPEC family and no addresses.
        let bare = self.v2(command: 0x0, familyTransport: 0x00, addresses: [])
        XCTAssertEqual(
            try XCTUnwrap(self.header(bare)),
            ProxyHeader(version: 2, source: nil, destination: nil, length: 16)
        )
        // A LOCAL header's address block, if any, is ignored.
        let withBlock = self.v2(command: 0x0, familyTransport: 0x11, addresses: self.ipv4Addresses)
        XCTAssertNil(try XCTUnwrap(self.header(withBlock)).source)
        self.assertEveryPrefixNeedsMore(withBlock)
    }

    func testV2ProxyUnspecAndUnixHaveNoAddress() throws {
        XCTAssertNil(try XCTUnwrap(self.header(self.v2(familyTransport: 0x00, addresses: []))).source)
        let unix = self.v2(familyTransport: 0x31, addresses: Array(repeating: 0x61, count: 216))
        XCTAssertEqual(try XCTUnwrap(self.header(unix)).length, 232)
    }

    func testV2TLVsAreSkipped() throws {
        // PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY "example.com", PP2_TYPE_NOOP padding of 0, a unique id of 3.
        let tlvs: [UInt8] =
            [0x01, 0x00, 0x02] + Array("h2".utf8) + [0x02, 0x00, 0x0B] + Array("example.com".utf8)
            + [0x04, 0x00, 0x00] + [0x05, 0x00, 0x03, 1, 2, 3]
        let bytes = self.v2(familyTransport: 0x11, addresses: self.ipv4Addresses, tlvs: tlvs)
        let header = try XCTUnwrap(self.header(bytes + [0x50]))
        XCTAssertEqual(header.source?.ipAddress, "192.0.2.10")
        XCTAssertEqual(header.length, 28 + tlvs.count)
        self.assertEveryPrefixNeedsMore(bytes)
    }

    func testV2Malformed() {
        let sig: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
        let bad: [(String, [UInt8])] = [
            ("version 1", sig + [0x11, 0x11, 0x00, 0x0C] + self.ipv4Addresses),
            ("version 3", sig + [0x31, 0x11, 0x00, 0x0C] + self.ipv4Addresses),
            ("command 2", sig + [0x22, 0x11, 0x00, 0x0C] + self.ipv4Addresses),
            ("family 4", sig + [0x21, 0x41, 0x00, 0x0C] + self.ipv4Addresses),
            ("transport 3", sig + [0x21, 0x13, 0x00, 0x0C] + self.ipv4Addresses),
            ("IPv4 length short", self.v2(familyTransport: 0x11, addresses: Array(self.ipv4Addresses.prefix(11)))),
            ("IPv6 length short", self.v2(familyTransport: 0x21, addresses: self.ipv4Addresses)),
            ("TLV truncated", self.v2(familyTransport: 0x11, addresses: self.ipv4Addresses, tlvs: [0x01, 0x00])),
            (
                "TLV overruns",
                self.v2(familyTransport: 0x11, addresses: self.ipv4Addresses, tlvs: [0x01, 0x00, 0x05, 1])
            ),
            ("signature", [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0B]),
            ("signature start", [0x0D, 0x0A, 0x0A]),
        ]
        for (name, bytes) in bad {
            XCTAssertTrue(self.isInvalid(self.parse(bytes)), name)
        }
        // A short declared length is refused on the 16th byte, before the addresses arrive.
        XCTAssertTrue(self.isInvalid(self.parse(sig + [0x21, 0x21, 0x00, 0x0C])))
    }

    func testV2LengthIsBoundedBeforeTheBytesArrive() {
        let head = self.v2(familyTransport: 0x11, addresses: self.ipv4Addresses, declaredLength: 2000)
        // The first 16 bytes declare 2016 bytes: over a 1024-byte limit that is known without the rest.
        XCTAssertTrue(self.isInvalid(self.parse(Array(head.prefix(16)), maxLength: 1024)))
        XCTAssertEqual(self.parse(Array(head.prefix(16)), maxLength: 4096), .needMoreBytes)
        XCTAssertEqual(self.parse(Array(head.prefix(16))), .needMoreBytes)
    }

    /// Random bytes (seeded, so a failure repeats): the parser answers something for every prefix and
    /// never claims more bytes than it was given.
    func testGarbageNeverCrashesOrOverreads() {
        var generator = SplitMix64(seed: 14)
        let starts: [[UInt8]] = [
            [], Array("PROXY ".utf8), Array("PROXY TCP4 ".utf8),
            [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21],
        ]
        for round in 0..<2000 {
            let start = starts[round % starts.count]
            let count = Int(generator.next() % 120)
            let bytes = start + (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if case .parsed(let header) = self.parse(bytes) {
                XCTAssertLessThanOrEqual(header.length, bytes.count)
            }
        }
    }
}

/// A small deterministic generator for the garbage test.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
