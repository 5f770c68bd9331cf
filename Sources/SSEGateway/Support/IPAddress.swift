#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as its bytes (4 or 16), for comparing against `trusted_proxies` networks. An
/// IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack socket reports for an IPv4 peer) is
/// its IPv4 address, so one `192.0.2.0/24` covers both spellings.
struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    let bytes: [UInt8]

    /// Parses a literal address (`inet_pton`: no name lookup); nil for anything else.
    init?(_ text: some StringProtocol) {
        var v4 = in_addr()
        var v6 = in6_addr()
        let text = String(text)
        if text.utf8.contains(UInt8(ascii: ":")) {
            guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            let mapped = bytes[..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
            self.bytes = mapped ? Array(bytes[12...]) : bytes
        } else {
            guard inet_pton(AF_INET, text, &v4) == 1 else { return nil }
            self.bytes = withUnsafeBytes(of: &v4) { Array($0) }
        }
    }

    init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// The address as `inet_ntop` writes it (`192.0.2.1`, `2001:db8::1`): one spelling per address.
    var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = self.bytes.count == 4 ? AF_INET : AF_INET6
        let written = self.bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count))
        }
        guard written != nil else { preconditionFailure("inet_ntop failed for \(self.bytes)") }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A CIDR network of `trusted_proxies`: `10.0.0.0/8`, `fd00::/8`, or a single address (`/32`, `/128`).
struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    let base: IPAddress
    let prefixLength: Int

    /// Parses `ADDRESS/PREFIX` or a bare address; host bits past the prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`).
    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        let maximum = address.bytes.count * 8
        var length = maximum
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
                let value = Int(digits), value <= maximum
            else { return nil }
            length = value
        }
        self.prefixLength = length
        self.base = IPAddress(bytes: Self.masked(address.bytes, length))!
    }

    func contains(_ address: IPAddress) -> Bool {
        address.bytes.count == self.base.bytes.count && Self.masked(address.bytes, self.prefixLength) == self.base.bytes
    }

    var description: String { "\(self.base)/\(self.prefixLength)" }

    private static func masked(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = min(8, max(0, length - index * 8))
            return bits == 8 ? byte : byte & ~(UInt8(0xFF) >> bits)
        }
    }
}
