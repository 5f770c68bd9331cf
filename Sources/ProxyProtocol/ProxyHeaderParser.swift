import NIOCore

/// Reads a PROXY protocol header (v1 or v2) from the first bytes of a connection. A pure function of the
/// bytes received so far, with no I/O and no state: call it again with more bytes when it asks for them.
///
/// Follows https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt:
/// - v1: `PROXY TCP4|TCP6 <src> <dst> <srcport> <dstport>\r\n` or `PROXY UNKNOWN ...\r\n`, at most 107
///   bytes with the CRLF; single spaces, addresses of the family named, ports 0-65535 without leading zeros.
/// - v2: the 12-byte signature, version 2, command LOCAL (no address: the balancer's own connection, e.g. a
///   health check) or PROXY, family UNSPEC/INET/INET6/UNIX, a big-endian length, the addresses, then TLVs,
///   which are checked to fit in the header and skipped.
///
/// Strict where a byte would otherwise be guessed at: the first byte that fits neither version, a header
/// longer than allowed, or a malformed address makes it `invalid` (the caller closes the connection).
public enum ProxyHeaderParser {
    public enum Result: Sendable, Equatable {
        /// The bytes so far are a valid start of a header: wait for more.
        case needMoreBytes
        /// A whole header; its `length` bytes are consumed, the rest belongs to the client.
        case parsed(ProxyHeader)
        /// Not a PROXY protocol header, or a malformed one: why, for a log line.
        case invalid(String)
    }

    /// The longest v1 header, CRLF included (the spec's bound).
    public static let v1MaxLength = 107
    /// The longest v2 header the format can describe: 16 bytes and a 16-bit length.
    public static let v2MaxLength = 16 + 65535
    static let v1Prefix = Array("PROXY ".utf8)
    /// `\r\n\r\n\0\r\nQUIT\n`.
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// Parses the header at the start of `buffer`'s readable bytes. `maxLength` bounds a v2 header
    /// (with its TLVs) so that a client cannot make the gateway hold 64 KiB before it says anything.
    public static func parse(_ buffer: ByteBuffer, maxLength: Int = v2MaxLength) -> Result {
        let bytes = buffer.readableBytesView
        guard let first = bytes.first else { return .needMoreBytes }
        if first == Self.v2Signature[0] {
            return Self.parseV2(buffer, maxLength: maxLength)
        }
        return Self.parseV1(buffer)
    }

    // MARK: v1

    private static func parseV1(_ buffer: ByteBuffer) -> Result {
        let bytes = Array(buffer.readableBytesView.prefix(Self.v1MaxLength))
        let compared = min(bytes.count, Self.v1Prefix.count)
        guard bytes[..<compared].elementsEqual(Self.v1Prefix[..<compared]) else {
            return .invalid("not a PROXY protocol header")
        }
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            if bytes.count >= Self.v1MaxLength { return .invalid("v1 header longer than \(Self.v1MaxLength) bytes") }
            return .needMoreBytes
        }
        guard newline > 0, bytes[newline - 1] == UInt8(ascii: "\r") else {
            return .invalid("v1 header does not end with CRLF")
        }
        let line = bytes[..<(newline - 1)]
        // Printable ASCII only: anything else is no address, port or keyword.
        guard line.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            return .invalid("v1 header has a byte that is not printable ASCII")
        }
        let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        let length = newline + 1
        guard fields.count >= 2 else { return .invalid("v1 header without a protocol") }
        switch fields[1] {
        case "UNKNOWN":
            // The balancer does not know the client (or it is not TCP): the rest of the line is to be ignored.
            return .parsed(ProxyHeader(version: 1, source: nil, destination: nil, length: length))
        case "TCP4", "TCP6":
            guard fields.count == 6 else { return .invalid("v1 header needs 4 fields after \(fields[1])") }
            let v6 = fields[1] == "TCP6"
            guard let sourcePort = Self.port(fields[4]), let destinationPort = Self.port(fields[5]) else {
                return .invalid("v1 header has a malformed port")
            }
            guard let source = Self.address(fields[2], port: sourcePort, v6: v6),
                let destination = Self.address(fields[3], port: destinationPort, v6: v6)
            else {
                return .invalid("v1 header has a malformed \(v6 ? "IPv6" : "IPv4") address")
            }
            return .parsed(ProxyHeader(version: 1, source: source, destination: destination, length: length))
        default:
            return .invalid("v1 header has an unknown protocol")
        }
    }

    /// A decimal port without sign or leading zeros, 0-65535.
    private static func port(_ text: String) -> Int? {
        let digits = Array(text.utf8)
        guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        guard digits.count == 1 || digits[0] != 0x30, let value = Int(text), value <= 65535 else { return nil }
        return value
    }

    private static func address(_ text: String, port: Int, v6: Bool) -> SocketAddress? {
        // `inet_pton` underneath: a pure conversion, no lookup. A name (`localhost`) is not an address.
        guard !text.isEmpty, let address = try? SocketAddress(ipAddress: text, port: port) else { return nil }
        switch address {
        case .v4: return v6 ? nil : address
        case .v6: return v6 ? address : nil
        case .unixDomainSocket: return nil
        }
    }

    // MARK: v2

    private static func parseV2(_ buffer: ByteBuffer, maxLength: Int) -> Result {
        let bytes = buffer.readableBytesView
        let compared = min(bytes.count, Self.v2Signature.count)
        guard bytes.prefix(compared).elementsEqual(Self.v2Signature.prefix(compared)) else {
            return .invalid("not a PROXY protocol header")
        }
        let start = buffer.readerIndex
        guard bytes.count >= 16,
            let versionCommand = buffer.getInteger(at: start + 12, as: UInt8.self),
            let familyTransport = buffer.getInteger(at: start + 13, as: UInt8.self),
            let declared = buffer.getInteger(at: start + 14, as: UInt16.self)
        else {
            return .needMoreBytes
        }
        guard versionCommand >> 4 == 2 else { return .invalid("v2 header with version \(versionCommand >> 4)") }
        let command = versionCommand & 0x0F
        guard command <= 1 else { return .invalid("v2 header with unknown command \(command)") }
        let family = familyTransport >> 4
        let transport = familyTransport & 0x0F
        guard family <= 3, transport <= 2 else {
            return .invalid(
                "v2 header with unknown address family or transport 0x\(String(familyTransport, radix: 16))"
            )
        }
        let length = 16 + Int(declared)
        guard length <= maxLength else {
            return .invalid("v2 header of \(length) bytes is over the limit of \(maxLength)")
        }
        // Checked before the whole header arrives: a declared length too short for its addresses is wrong now.
        let addressLength: Int
        switch family {
        case 1: addressLength = 12
        case 2: addressLength = 36
        case 3: addressLength = 216
        default: addressLength = 0
        }
        if command == 1, Int(declared) < addressLength {
            return .invalid("v2 header of \(declared) bytes is too short for its addresses (\(addressLength))")
        }
        guard bytes.count >= length else { return .needMoreBytes }
        // LOCAL: the balancer's own connection; its address block, if any, is to be ignored.
        guard command == 1 else {
            return .parsed(ProxyHeader(version: 2, source: nil, destination: nil, length: length))
        }
        var source: SocketAddress?
        var destination: SocketAddress?
        if family == 1 || family == 2 {
            let width = family == 1 ? 4 : 16
            guard let sourceBytes = buffer.getSlice(at: start + 16, length: width),
                let destinationBytes = buffer.getSlice(at: start + 16 + width, length: width),
                let sourcePort = buffer.getInteger(at: start + 16 + 2 * width, as: UInt16.self),
                let destinationPort = buffer.getInteger(at: start + 18 + 2 * width, as: UInt16.self)
            else {
                preconditionFailure("a v2 header of \(length) bytes holds its \(addressLength) address bytes")
            }
            source = try? SocketAddress(packedIPAddress: sourceBytes, port: Int(sourcePort))
            destination = try? SocketAddress(packedIPAddress: destinationBytes, port: Int(destinationPort))
        }
        if let problem = Self.checkTLVs(buffer, from: start + 16 + addressLength, to: start + length) {
            return .invalid(problem)
        }
        return .parsed(ProxyHeader(version: 2, source: source, destination: destination, length: length))
    }

    /// TLVs (type, 16-bit length, value) after the addresses must tile the rest of the header exactly.
    private static func checkTLVs(_ buffer: ByteBuffer, from start: Int, to end: Int) -> String? {
        var position = start
        while position < end {
            guard end - position >= 3, let length = buffer.getInteger(at: position + 1, as: UInt16.self) else {
                return "v2 header with a truncated TLV"
            }
            position += 3 + Int(length)
            if position > end { return "v2 header with a TLV longer than the header" }
        }
        return nil
    }
}
