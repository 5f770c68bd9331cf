import FuzzSupport
import NIOCore
import SSE
import SSEReference

/// `SSEParser` against ``ReferenceEventStream``: the same outputs and last event ID for the same bytes, fed in
/// one piece, one byte at a time, and cut where the input says.
///
/// Input: a control byte, then up to seven chunk lengths, then the stream. The control byte's low three bits
/// count the chunk-length bytes; the stream is fed in chunks of those lengths, in turn, until it is used up
/// (a zero length is an empty read). Bit 3 asks for a run with small limits, sized by the high four bits:
/// then the parser may stop with an error, but what it reported until then must be the reference's start.
public enum SSEParserTarget {
    public static func run(_ input: [UInt8]) {
        guard let control = input.first else { return }
        let lengthCount = min(Int(control & 0b111), input.count - 1)
        let lengths = input[1..<(1 + lengthCount)].map(Int.init)
        let stream = Array(input[(1 + lengthCount)...])

        let reference = ReferenceEventStream.interpret(stream)
        let expected = reference.outputs.map(ExactOutput.init)

        let whole = Self.parse(stream, chunks: [stream[...]])
        Self.check(whole, expected, reference.lastEventID, "in one piece", stream)

        let chunks = Self.chunks(stream, lengths: lengths)
        let split = Self.parse(stream, chunks: chunks)
        Self.check(split, expected, reference.lastEventID, "in chunks \(chunks.map(\.count))", stream)

        if stream.count <= 512 {
            let bytes = Self.parse(stream, chunks: stream.indices.map { stream[$0..<($0 + 1)] })
            Self.check(bytes, expected, reference.lastEventID, "one byte at a time", stream)
        }

        if control & 0b1000 != 0 {
            let size = Int(control >> 4)
            let limits = SSEParser.Limits(maxLineBytes: 1 + size * 3, maxEventBytes: 1 + size * 5)
            let limited = Self.parse(stream, chunks: chunks, limits: limits)
            if limited.error == nil {
                Self.check(limited, expected, reference.lastEventID, "with \(limits) in chunks", stream)
            } else if !expected.starts(with: limited.outputs) {
                fuzzFailure(
                    "before \(limited.error!) with \(limits), the parser reported \(limited.outputs), "
                        + "not a start of \(expected); stream \(String(reflecting: stream))"
                )
            }
        }
    }

    struct Result {
        var outputs: [ExactOutput] = []
        var lastEventID = ""
        var error: SSEParser.ParseError? = nil
    }

    /// Feeds `chunks` (which make up `stream`) as separate reads, through `ByteBuffer` as the gateway does.
    static func parse(
        _ stream: [UInt8],
        chunks: [ArraySlice<UInt8>],
        limits: SSEParser.Limits = SSEParser.Limits()
    ) -> Result {
        var parser = SSEParser(limits: limits)
        var result = Result()
        do {
            for chunk in chunks {
                var buffer = ByteBuffer(bytes: chunk)
                try parser.parse(&buffer) { result.outputs.append(ExactOutput($0)) }
                guard buffer.readableBytes == 0 else { fuzzFailure("parse left \(buffer.readableBytes) bytes unread") }
            }
        } catch {
            result.error = error
        }
        result.lastEventID = parser.lastEventID
        return result
    }

    static func chunks(_ stream: [UInt8], lengths: [Int]) -> [ArraySlice<UInt8>] {
        guard lengths.contains(where: { $0 > 0 }) else { return [stream[...]] }
        var chunks: [ArraySlice<UInt8>] = []
        var start = 0
        var turn = 0
        while start < stream.count {
            let end = min(stream.count, start + lengths[turn % lengths.count])
            chunks.append(stream[start..<end])
            start = end
            turn += 1
        }
        return chunks
    }

    static func check(
        _ result: Result,
        _ expected: [ExactOutput],
        _ lastEventID: String,
        _ how: String,
        _ stream: [UInt8]
    ) {
        if let error = result.error {
            fuzzFailure("fed \(how), the parser threw \(error) on \(String(reflecting: stream))")
        }
        guard result.outputs == expected else {
            fuzzFailure(
                "fed \(how), the parser reported\n  \(result.outputs)\nthe reference\n  \(expected)\n"
                    + "for \(String(reflecting: stream))"
            )
        }
        guard Array(result.lastEventID.utf8) == Array(lastEventID.utf8) else {
            fuzzFailure(
                "fed \(how), lastEventID is \(String(reflecting: result.lastEventID)), the reference's "
                    + "\(String(reflecting: lastEventID)), for \(String(reflecting: stream))"
            )
        }
    }
}
