import NIOCore
import SSE
import XCTest

/// SplitMix64: tiny, deterministic and independent of the platform, so every run checks the same cases
/// and a failure reproduces.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        self.state = seed
    }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func chance(_ percent: Int) -> Bool {
        Int.random(in: 0..<100, using: &self) < percent
    }

    mutating func pick<T>(_ options: [T]) -> T {
        options[Int.random(in: 0..<options.count, using: &self)]
    }
}

/// Builds values that exercise the serializer's edge cases: leading spaces, colons, field-like text,
/// multi-byte scalars, a BOM, NEL and LINE SEPARATOR (not line ends in SSE), and optionally NUL.
enum Generator {
    private static let pieces = [
        "a", "Z", "0", "42", " ", "  ", ":", ": ", "data: ", "id:", "event", "é", "€", "😀", "日本",
        "\u{FEFF}", "\t", "\u{85}", "\u{2028}", "\\n", "retry: 5",
    ]

    static func text(_ rng: inout SplitMix64, maxPieces: Int = 6, allowNUL: Bool) -> String {
        let count = Int.random(in: 0...maxPieces, using: &rng)
        var result = ""
        for _ in 0..<count {
            result += allowNUL && rng.chance(5) ? "\u{0}" : rng.pick(Self.pieces)
        }
        return result
    }

    /// An event with the shape the parser can produce (see ``ServerSentEvent``'s invariants).
    static func parsableEvent(_ rng: inout SplitMix64) -> ServerSentEvent {
        let id: String? = rng.chance(35) ? nil : Self.text(&rng, allowNUL: false)
        if id != nil, rng.chance(20) {
            return ServerSentEvent(id: id, type: nil, data: nil)
        }
        var type: String? = nil
        if rng.chance(50) {
            let candidate = Self.text(&rng, allowNUL: true)
            type = candidate.isEmpty ? "message" : candidate
        }
        let lineCount = Int.random(in: 1...5, using: &rng)
        let lines = (0..<lineCount).map { _ in rng.chance(20) ? "" : Self.text(&rng, maxPieces: 10, allowNUL: true) }
        return ServerSentEvent(id: id, type: type, data: lines.joined(separator: "\n"))
    }

    /// A random but well-formed-enough raw stream: the parser decides which events it contains.
    static func rawStream(_ rng: inout SplitMix64, lines: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for _ in 0..<lines {
            let value = Self.text(&rng, maxPieces: 4, allowNUL: true)
            let line: String
            switch Int.random(in: 0..<14, using: &rng) {
            case 0, 1, 2: line = "data: " + value
            case 3: line = "data:" + value
            case 4: line = "data"
            case 5: line = "id: " + value
            case 6: line = "id"
            case 7: line = "event: " + value
            case 8: line = "event"
            case 9: line = ":" + value
            case 10: line = "retry: " + rng.pick(["0", "10", "3000", "1x", "-1", ""])
            case 11: line = rng.pick(["foo: bar", "Data: x", "ID: 1", "data : y"])
            default: line = ""
            }
            bytes += Array(line.utf8)
            if rng.chance(3) {
                bytes.append(rng.pick([0xFF, 0xC3, 0xE2, 0x80]))
            }
            bytes += Array(rng.pick(["\n", "\n", "\r\n", "\r"]).utf8)
        }
        return bytes
    }

    /// Cuts `bytes` into pieces of 0...maxPiece bytes (empty pieces included on purpose).
    static func chunks(of bytes: [UInt8], _ rng: inout SplitMix64, maxPiece: Int) -> [[UInt8]] {
        var result: [[UInt8]] = []
        var index = 0
        while index < bytes.count {
            let size = Int.random(in: 0...maxPiece, using: &rng)
            let end = min(index + size, bytes.count)
            result.append(Array(bytes[index..<end]))
            index = end
        }
        return result
    }
}

final class RoundTripTests: XCTestCase {
    private func encode(_ event: ServerSentEvent) -> [UInt8] {
        var buffer = ByteBuffer()
        SSESerializer.write(event, into: &buffer)
        return Array(buffer.readableBytesView)
    }

    func testGeneratedEventsRoundTripWholeAndSplitAtEveryOffset() {
        var rng = SplitMix64(seed: 0x55E_6A7E)
        var idOnly = 0
        var multiLine = 0
        for index in 0..<400 {
            let event = Generator.parsableEvent(&rng)
            if event.data == nil { idOnly += 1 }
            if event.data?.contains("\n") == true { multiLine += 1 }

            let bytes = self.encode(event)
            XCTAssertEqual(SSESerializer.encodedLength(of: event), bytes.count, "encodedLength of #\(index) \(event)")
            let expected = ParseRun(outputs: [.event(event)], error: nil, lastEventID: event.id ?? "")

            XCTAssertEqual(parseChunks([bytes]), expected, "whole #\(index)")
            var failures = 0
            for offset in 0...bytes.count {
                if parseChunks([Array(bytes[..<offset]), Array(bytes[offset...])], api: .array) != expected {
                    failures += 1
                }
            }
            XCTAssertEqual(
                failures,
                0,
                "splits of #\(index) \(event) encoded as \(String(decoding: bytes, as: UTF8.self).debugDescription)"
            )
        }
        // Guard against a generator that silently stopped producing the interesting shapes.
        XCTAssertGreaterThan(idOnly, 20)
        XCTAssertGreaterThan(multiLine, 100)
    }

    func testGeneratedStreamRoundTripsInRandomChunks() {
        var rng = SplitMix64(seed: 2024)
        var stream = ByteBuffer()
        var expected: [SSEParser.Output] = []
        var lastEventID = ""
        // A stream may start with a BOM; it must not disturb the first event.
        stream.writeBytes([0xEF, 0xBB, 0xBF])
        for _ in 0..<300 {
            if rng.chance(10) {
                SSESerializer.writeComment(Generator.text(&rng, allowNUL: true), into: &stream)
            }
            if rng.chance(5) {
                let milliseconds = Int64.random(in: 0...60_000, using: &rng)
                SSESerializer.writeRetry(milliseconds: milliseconds, into: &stream)
                expected.append(.retry(Int(milliseconds)))
            }
            let event = Generator.parsableEvent(&rng)
            SSESerializer.write(event, into: &stream)
            expected.append(.event(event))
            lastEventID = event.id ?? lastEventID
        }
        let bytes = Array(stream.readableBytesView)
        let expectedRun = ParseRun(outputs: expected, error: nil, lastEventID: lastEventID)

        XCTAssertEqual(parseChunks([bytes]), expectedRun)
        XCTAssertEqual(parseChunks(bytes.map { [$0] }), expectedRun, "one byte at a time")
        for maxPiece in [2, 3, 7, 64, 1000] {
            let chunks = Generator.chunks(of: bytes, &rng, maxPiece: maxPiece)
            XCTAssertEqual(parseChunks(chunks), expectedRun, "pieces of up to \(maxPiece) bytes")
        }
    }

    func testEveryEventParsedFromRandomStreamsRoundTrips() {
        var rng = SplitMix64(seed: 7)
        var events = 0
        var idOnly = 0
        for streamIndex in 0..<60 {
            let raw = Generator.rawStream(&rng, lines: 60)
            let whole = parseChunks([raw])
            XCTAssertNil(whole.error)

            // The stream itself must parse identically however it is cut.
            let chunked = parseChunks(Generator.chunks(of: raw, &rng, maxPiece: 9))
            XCTAssertEqual(chunked, whole, "stream #\(streamIndex) in random chunks")

            for case .event(let event) in whole.outputs {
                events += 1
                if event.data == nil { idOnly += 1 }
                let bytes = self.encode(event)
                XCTAssertEqual(SSESerializer.encodedLength(of: event), bytes.count)
                XCTAssertEqual(
                    parseChunks([bytes]),
                    ParseRun(outputs: [.event(event)], error: nil, lastEventID: event.id ?? ""),
                    "round trip of \(event) from stream #\(streamIndex)"
                )
            }
        }
        XCTAssertGreaterThan(events, 200)
        XCTAssertGreaterThan(idOnly, 10)
    }
}
