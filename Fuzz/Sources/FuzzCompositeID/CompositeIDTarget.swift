import FuzzSupport

@testable import SSEGateway

/// `CompositeID.decode` on any text never traps, and what it accepts round-trips: the encoding of a decoded
/// id decodes to the same ids and is printable ASCII; an id written without escapes encodes back to itself;
/// and any list of ids survives encode then decode.
///
/// Input: a byte giving the number of feeds (1 + byte % 8), then the text (UTF-8, repaired), which also
/// serves as a list of ids separated by `|`.
public enum CompositeIDTarget {
    public static func run(_ input: [UInt8]) {
        guard let first = input.first else { return }
        let feeds = 1 + Int(first % 8)
        let text = String(decoding: input.dropFirst(), as: UTF8.self)

        if let decoded = CompositeID.decode(text, feeds: feeds) {
            guard decoded.ids.count == feeds else { fuzzFailure("\(decoded.ids.count) ids for \(feeds) feeds") }
            let encoded = decoded.encoded
            guard encoded.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                fuzzFailure("encoded id \(String(reflecting: encoded)) is not printable ASCII")
            }
            guard let again = CompositeID.decode(encoded, feeds: feeds), Self.same(again.ids, decoded.ids) else {
                fuzzFailure("\(String(reflecting: encoded)) does not decode to \(decoded.ids)")
            }
            // Escapes may be spelled several ways (`%2c`, `%2C`, `%41` for `A`); text without any is canonical.
            if !text.utf8.contains(UInt8(ascii: "%")), encoded != text {
                fuzzFailure("\(String(reflecting: text)) decodes and encodes to \(String(reflecting: encoded))")
            }
        }

        let ids = text.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        let encoded = CompositeID(ids: ids).encoded
        guard let decoded = CompositeID.decode(encoded, feeds: ids.count), Self.same(decoded.ids, ids) else {
            fuzzFailure("ids \(ids) encode to \(String(reflecting: encoded)), which does not decode to them")
        }
    }

    /// Byte-for-byte equality (String's `==` is canonical equivalence).
    static func same(_ left: [String], _ right: [String]) -> Bool {
        left.map { Array($0.utf8) } == right.map { Array($0.utf8) }
    }
}
