import NIOCore
import SSE
import XCTest

/// Everything a parse run is observable by: what was emitted, whether (and how) it stopped, and the
/// resulting last event ID.
struct ParseRun: Equatable, CustomStringConvertible {
    var outputs: [SSEParser.Output]
    var error: SSEParser.ParseError?
    var lastEventID: String

    var description: String {
        "outputs: \(self.outputs), error: \(String(describing: self.error)), lastEventID: \(self.lastEventID.debugDescription)"
    }
}

/// How the chunks of one run are handed to the parser.
enum FeedAPI: CaseIterable {
    /// `parse(_: inout ByteBuffer, _:)`, each chunk behind a non-zero reader index so only readable bytes count.
    case byteBuffer
    /// `parse(_: some Collection<UInt8>, _:)` with a contiguous `[UInt8]`.
    case array
    /// `parse(_: some Collection<UInt8>, _:)` with a collection that has no contiguous storage.
    case nonContiguous
}

/// Feeds `chunks` in order to `parser`, stopping at the first error as the gateway does.
func parseChunks(
    _ chunks: [[UInt8]],
    api: FeedAPI = .byteBuffer,
    parser: inout SSEParser,
    file: StaticString = #filePath,
    line: UInt = #line
) -> ParseRun {
    var outputs: [SSEParser.Output] = []
    for chunk in chunks {
        do throws(SSEParser.ParseError) {
            switch api {
            case .byteBuffer:
                var buffer = ByteBuffer()
                buffer.writeString("junk")
                buffer.moveReaderIndex(forwardBy: 4)
                buffer.writeBytes(chunk)
                defer {
                    XCTAssertEqual(
                        buffer.readableBytes,
                        0,
                        "parse must consume all readable bytes",
                        file: file,
                        line: line
                    )
                }
                try parser.parse(&buffer) { outputs.append($0) }
            case .array:
                try parser.parse(chunk) { outputs.append($0) }
            case .nonContiguous:
                try parser.parse(chunk.lazy.map { $0 }) { outputs.append($0) }
            }
        } catch {
            return ParseRun(outputs: outputs, error: error, lastEventID: parser.lastEventID)
        }
    }
    return ParseRun(outputs: outputs, error: nil, lastEventID: parser.lastEventID)
}

func parseChunks(
    _ chunks: [[UInt8]],
    limits: SSEParser.Limits = SSEParser.Limits(),
    api: FeedAPI = .byteBuffer,
    file: StaticString = #filePath,
    line: UInt = #line
) -> ParseRun {
    var parser = SSEParser(limits: limits)
    return parseChunks(chunks, api: api, parser: &parser, file: file, line: line)
}

/// Asserts that `input` parses to exactly `outputs` / `lastEventID` / `error` however it is delivered:
/// whole (through every API), split in two at every byte offset (including empty pieces at either end),
/// and one byte at a time.
func assertParses(
    _ input: [UInt8],
    limits: SSEParser.Limits = SSEParser.Limits(),
    _ outputs: [SSEParser.Output],
    lastEventID: String = "",
    error: SSEParser.ParseError? = nil,
    file: StaticString = #filePath,
    line: UInt = #line
) {
    let expected = ParseRun(outputs: outputs, error: error, lastEventID: lastEventID)

    for api in FeedAPI.allCases {
        XCTAssertEqual(
            parseChunks([input], limits: limits, api: api, file: file, line: line),
            expected,
            "whole input via \(api)",
            file: file,
            line: line
        )
    }

    var splitFailures = 0
    for offset in 0...input.count {
        let pieces = [Array(input[..<offset]), Array(input[offset...])]
        let api: FeedAPI = offset % 2 == 0 ? .byteBuffer : .array
        let actual = parseChunks(pieces, limits: limits, api: api, file: file, line: line)
        if actual != expected {
            splitFailures += 1
            // One message per failing vector is enough to diagnose; hundreds would bury it.
            if splitFailures == 1 {
                XCTFail(
                    "split at offset \(offset) of \(input.count) via \(api): got \(actual), expected \(expected)",
                    file: file,
                    line: line
                )
            }
        }
    }
    XCTAssertEqual(splitFailures, 0, "number of failing two-piece splits", file: file, line: line)

    let bytewise = input.map { [$0] }
    XCTAssertEqual(
        parseChunks(bytewise, limits: limits, api: .byteBuffer, file: file, line: line),
        expected,
        "one byte at a time (ByteBuffer)",
        file: file,
        line: line
    )
    XCTAssertEqual(
        parseChunks(bytewise, limits: limits, api: .array, file: file, line: line),
        expected,
        "one byte at a time (array)",
        file: file,
        line: line
    )

    // Empty reads in between must not disturb anything either (notably the pending-CR state).
    let withEmptyReads = input.flatMap { [[], [$0]] } + [[]]
    XCTAssertEqual(
        parseChunks(withEmptyReads, limits: limits, file: file, line: line),
        expected,
        "one byte at a time with empty reads",
        file: file,
        line: line
    )
}

func assertParses(
    _ input: String,
    limits: SSEParser.Limits = SSEParser.Limits(),
    _ outputs: [SSEParser.Output],
    lastEventID: String = "",
    error: SSEParser.ParseError? = nil,
    file: StaticString = #filePath,
    line: UInt = #line
) {
    assertParses(
        Array(input.utf8),
        limits: limits,
        outputs,
        lastEventID: lastEventID,
        error: error,
        file: file,
        line: line
    )
}

/// Shorthand for an `.event` output.
func event(id: String? = nil, type: String? = nil, _ data: String?) -> SSEParser.Output {
    .event(ServerSentEvent(id: id, type: type, data: data))
}

/// Parses `input` with `parser`, failing the test on a throw; for tests that drive one parser step by step.
func feed(
    _ parser: inout SSEParser,
    _ input: String,
    file: StaticString = #filePath,
    line: UInt = #line
) -> [SSEParser.Output] {
    feed(&parser, Array(input.utf8), file: file, line: line)
}

func feed(
    _ parser: inout SSEParser,
    _ input: [UInt8],
    file: StaticString = #filePath,
    line: UInt = #line
) -> [SSEParser.Output] {
    var outputs: [SSEParser.Output] = []
    do throws(SSEParser.ParseError) {
        try parser.parse(input) { outputs.append($0) }
    } catch {
        XCTFail("unexpected \(error)", file: file, line: line)
    }
    return outputs
}
