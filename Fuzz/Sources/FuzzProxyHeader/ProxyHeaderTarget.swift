import FuzzSupport
import NIOCore
import ProxyProtocol

/// `ProxyHeaderParser.parse` on the first bytes of a connection, as the pipeline's first handler calls it: again
/// with every read. It never traps, and its answers agree however many bytes have arrived: more bytes never turn
/// `invalid` into anything else, never change a parsed header, and a header is parsed exactly when its last byte
/// arrives (not before, so no byte of it is left for the client, and not after, so no client byte is taken).
///
/// Input: a byte choosing `maxLength` (the default, or a small bound), then the connection's first bytes.
public enum ProxyHeaderTarget {
    static let maxLengths = [ProxyHeaderParser.v2MaxLength, 16, 28, 52, 232, 536]

    public static func run(_ input: [UInt8]) {
        guard let first = input.first else { return }
        let maxLength = Self.maxLengths[Int(first) % Self.maxLengths.count]
        let bytes = Array(input.dropFirst())
        func parse(_ count: Int) -> ProxyHeaderParser.Result {
            ProxyHeaderParser.parse(ByteBuffer(bytes: bytes[..<count]), maxLength: maxLength)
        }

        // Every prefix for short inputs (each read as small as one byte); for long ones the start and the end.
        var counts = Array(0...min(bytes.count, 256))
        if bytes.count > 256 { counts.append(bytes.count) }
        var previous = ProxyHeaderParser.Result.needMoreBytes
        var previousCount = 0
        for count in counts {
            let result = parse(count)
            switch (previous, result) {
            case (.needMoreBytes, .needMoreBytes), (.needMoreBytes, .invalid), (.invalid, .invalid):
                break
            case (.needMoreBytes, .parsed(let header)):
                Self.check(header, parsedAt: count, after: previousCount, maxLength: maxLength, bytes)
                if count - previousCount > 1 {
                    // The jump skipped counts: the header must be complete at its own length and not before.
                    guard parse(header.length) == result, parse(header.length - 1) == .needMoreBytes else {
                        fuzzFailure("header of \(header.length) bytes not parsed exactly at its end: \(bytes)")
                    }
                }
            case (.parsed, _):
                guard result == previous else {
                    fuzzFailure("\(previous) at \(previousCount) bytes became \(result) at \(count): \(bytes)")
                }
            default:
                fuzzFailure("\(previous) at \(previousCount) bytes became \(result) at \(count): \(bytes)")
            }
            previous = result
            previousCount = count
        }
    }

    static func check(
        _ header: ProxyHeader,
        parsedAt count: Int,
        after previousCount: Int,
        maxLength: Int,
        _ bytes: [UInt8]
    ) {
        guard header.length > previousCount, header.length <= count else {
            fuzzFailure("parsed at \(count) bytes (not at \(previousCount)) with length \(header.length): \(bytes)")
        }
        switch header.version {
        case 1:
            guard header.length <= ProxyHeaderParser.v1MaxLength else {
                fuzzFailure("v1 header of \(header.length) bytes: \(bytes)")
            }
        case 2:
            guard header.length >= 16, header.length <= maxLength else {
                fuzzFailure("v2 header of \(header.length) bytes with maxLength \(maxLength): \(bytes)")
            }
        default:
            fuzzFailure("version \(header.version): \(bytes)")
        }
        if header.source != nil, header.destination == nil {
            fuzzFailure("a source without a destination: \(header) from \(bytes)")
        }
    }
}
