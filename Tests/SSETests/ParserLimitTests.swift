import NIOCore
import SSE
import XCTest

final class ParserLimitTests: XCTestCase {
    private let small = SSEParser.Limits(maxLineBytes: 16, maxEventBytes: 24)

    func testDefaultLimits() {
        let limits = SSEParser.Limits()
        XCTAssertEqual(limits.maxLineBytes, 1 << 20)
        XCTAssertEqual(limits.maxEventBytes, 1 << 20)
    }

    func testLineOfExactlyMaxLineBytesIsAccepted() {
        // "data: " + 10 bytes = 16 bytes, the terminator does not count.
        assertParses("data: 0123456789\n\n", limits: self.small, [event("0123456789")])
        assertParses("data: 0123456789\r\n\r\n", limits: self.small, [event("0123456789")])
    }

    func testLineOneByteOverTheLimitThrows() {
        assertParses(
            "data: a\n\ndata: 0123456789A\n\ndata: b\n\n",
            limits: self.small,
            [event("a")],
            error: .lineTooLong(limit: 16)
        )
    }

    func testEveryKindOfLineIsLimited() {
        for line in [": 0123456789ABCDEF", "unknownfield: 0123456", "retry: 00000000001", "id: 0123456789ABCD"] {
            assertParses(line + "\n", limits: self.small, [], error: .lineTooLong(limit: 16))
        }
    }

    func testTooLongLineThrowsBeforeItsTerminatorArrives() {
        // Bounded memory: the parser must give up as soon as the 17th byte is seen, not buffer until LF.
        var parser = SSEParser(limits: self.small)
        let line = Array("data: 0123456789ABCDEFGHIJ".utf8)
        for (index, byte) in line.enumerated() {
            var thrown: SSEParser.ParseError?
            do throws(SSEParser.ParseError) {
                try parser.parse([byte]) { XCTFail("unexpected output \($0)") }
            } catch {
                thrown = error
            }
            if index < 16 {
                XCTAssertNil(thrown, "byte \(index) is still within the limit")
            } else {
                XCTAssertEqual(thrown, .lineTooLong(limit: 16), "byte \(index) exceeds the limit")
                break
            }
        }
        assertParses(line, limits: self.small, [], error: .lineTooLong(limit: 16))
    }

    func testTooLongLineInManySmallPiecesThrows() {
        let limits = SSEParser.Limits(maxLineBytes: 1000, maxEventBytes: 1 << 20)
        let pieces = [Array("data: ".utf8)] + Array(repeating: Array("0123456789".utf8), count: 100) + [[0x0A]]
        let result = parseChunks(pieces, limits: limits)
        XCTAssertEqual(result, ParseRun(outputs: [], error: .lineTooLong(limit: 1000), lastEventID: ""))
        // Exactly at the limit in pieces is fine.
        let fitting =
            [Array("data: ".utf8)] + Array(repeating: Array("0123456789".utf8), count: 99) + [Array("0123\n\n".utf8)]
        XCTAssertEqual(
            parseChunks(fitting, limits: limits).outputs,
            [event(String(repeating: "0123456789", count: 99) + "0123")]
        )
    }

    func testBlockOverMaxEventBytesThrows() {
        // 10 + 1 + 10 + 1 + 2 = 24 bytes of data (the joining LFs count): at the limit.
        assertParses(
            "data: 0123456789\ndata: 0123456789\ndata: 01\n\n",
            limits: self.small,
            [event("0123456789\n0123456789\n01")]
        )
        assertParses(
            "data: x\n\ndata: 0123456789\ndata: 0123456789\ndata: 012\n\ndata: y\n\n",
            limits: self.small,
            [event("x")],
            error: .eventTooLarge(limit: 24)
        )
    }

    func testManySmallDataLinesAreBoundedByMaxEventBytes() {
        let limits = SSEParser.Limits(maxLineBytes: 64, maxEventBytes: 1000)
        var input = ""
        for _ in 0..<200 {
            input += "data: 0123456789\n"
        }
        var parser = SSEParser(limits: limits)
        let result = parseChunks([Array(input.utf8)], parser: &parser)
        XCTAssertEqual(result.error, .eventTooLarge(limit: 1000))
        XCTAssertEqual(result.outputs, [])
    }

    func testEventTypeAndIDCountTowardsTheBlock() {
        // type 3 + id 2 + data 19 = 24: at the limit.
        let limits = SSEParser.Limits(maxLineBytes: 64, maxEventBytes: 24)
        assertParses(
            "event: abc\nid: de\ndata: 0123456789ABCDEFGHI\n\n",
            limits: limits,
            [event(id: "de", type: "abc", "0123456789ABCDEFGHI")],
            lastEventID: "de"
        )
        assertParses(
            "event: abc\nid: de\ndata: 0123456789ABCDEFGHIJ\n\n",
            limits: limits,
            [],
            lastEventID: "de",
            error: .eventTooLarge(limit: 24)
        )
        assertParses(
            "data: 0123456789ABCDEFGHIJ\nevent: abcd\n\n",
            limits: limits,
            [event(type: "abcd", "0123456789ABCDEFGHIJ")]
        )
        assertParses(
            "data: 0123456789ABCDEFGHIJ\nevent: abcde\n\n",
            limits: limits,
            [],
            error: .eventTooLarge(limit: 24)
        )
        assertParses("data: 0123456789ABCDEFGHIJ\nid: abcde\n\n", limits: limits, [], error: .eventTooLarge(limit: 24))
    }

    func testReplacedEventTypeOrIDIsNotCountedTwice() {
        let limits = SSEParser.Limits(maxLineBytes: 64, maxEventBytes: 10)
        assertParses(
            "event: 0123456789\nevent: 0123456789\nevent: abc\nid: 0123456\nid: 0123456\ndata\n\n",
            limits: limits,
            [event(id: "0123456", type: "abc", "")],
            lastEventID: "0123456"
        )
    }

    func testBlockSizeStartsOverAfterDispatch() {
        let limits = SSEParser.Limits(maxLineBytes: 64, maxEventBytes: 10)
        let input = String(repeating: "data: 0123456789\n\n", count: 20)
        assertParses(input, limits: limits, Array(repeating: event("0123456789"), count: 20))
    }

    func testIDOnlyBlockIsLimited() {
        let limits = SSEParser.Limits(maxLineBytes: 64, maxEventBytes: 3)
        assertParses("id: 123\n\n", limits: limits, [event(id: "123", nil)], lastEventID: "123")
        assertParses("id: 1234\n\n", limits: limits, [], error: .eventTooLarge(limit: 3))
    }

    func testBOMDoesNotCountTowardsTheLine() {
        let limits = SSEParser.Limits(maxLineBytes: 4, maxEventBytes: 64)
        assertParses([0xEF, 0xBB, 0xBF] + Array("data\n\n".utf8), limits: limits, [event("")])
    }

    func testParserWorksAgainAfterResetFollowingLineTooLong() throws {
        var parser = SSEParser(limits: self.small)
        var outputs: [SSEParser.Output] = []
        var buffer = ByteBuffer(string: "id: 1\ndata: a\n\nid: 2\ndata: 0123456789ABCDEF\n\n")
        XCTAssertThrowsError(try parser.parse(&buffer) { outputs.append($0) }) { error in
            XCTAssertEqual(error as? SSEParser.ParseError, .lineTooLong(limit: 16))
        }
        XCTAssertEqual(buffer.readableBytes, 0, "the buffer is consumed even when parsing throws")
        XCTAssertEqual(outputs, [event(id: "1", "a")])
        XCTAssertEqual(parser.lastEventID, "2", "the id line before the failure was valid and stays applied")

        parser.reset()
        outputs = []
        buffer = ByteBuffer(string: "data: b\n\n")
        try parser.parse(&buffer) { outputs.append($0) }
        XCTAssertEqual(outputs, [event("b")], "nothing of the failed block may leak into the next one")
        XCTAssertEqual(parser.lastEventID, "2")
    }

    func testParserWorksAgainAfterResetFollowingEventTooLarge() {
        var parser = SSEParser(limits: self.small)
        let failed = parseChunks([Array("event: bigger\ndata: 0123456789\ndata: 0123456789\n".utf8)], parser: &parser)
        XCTAssertEqual(failed, ParseRun(outputs: [], error: .eventTooLarge(limit: 24), lastEventID: ""))
        parser.reset()
        let again = parseChunks([Array("data: 0123456789\n\n".utf8)], parser: &parser)
        XCTAssertEqual(
            again,
            ParseRun(outputs: [event("0123456789")], error: nil, lastEventID: ""),
            "the old event type must be gone"
        )
    }

    func testFailedLineIsDiscardedEvenWithoutReset() {
        // The first piece fits and is buffered; the second overflows. The buffered bytes must go with it,
        // or they would become the start of the next line.
        var parser = SSEParser(limits: self.small)
        let failed = parseChunks([Array("data: 01234".utf8), Array("56789ABCDEFG".utf8)], parser: &parser)
        XCTAssertEqual(failed.error, .lineTooLong(limit: 16))
        XCTAssertEqual(parseChunks([Array("\ndata: ok\n\n".utf8)], parser: &parser).outputs, [event("ok")])
    }

    func testFailedBlockIsDiscardedEvenWithoutReset() {
        var parser = SSEParser(limits: self.small)
        let failed = parseChunks(
            [Array("id: 1\nevent: e\ndata: 0123456789\ndata: 0123456789\ndata: 0123456789\n".utf8)],
            parser: &parser
        )
        XCTAssertEqual(failed.error, .eventTooLarge(limit: 24))
        XCTAssertEqual(parseChunks([Array("\ndata: ok\n\n".utf8)], parser: &parser).outputs, [event("ok")])
    }
}
