import NIOCore
import SSE
import XCTest

final class ParserLineEndingTests: XCTestCase {
    func testLF() {
        assertParses("data: a\ndata: b\n\n", [event("a\nb")])
    }

    func testCRLF() {
        assertParses("data: a\r\ndata: b\r\n\r\n", [event("a\nb")])
    }

    func testLoneCR() {
        assertParses("data: a\rdata: b\r\r", [event("a\nb")])
    }

    func testMixedLineEndings() {
        assertParses(
            "data: a\rdata: b\ndata: c\r\n\rid: 1\r\ndata: d\n\r\n",
            [event("a\nb\nc"), event(id: "1", "d")],
            lastEventID: "1"
        )
    }

    func testCRLFIsOneLineEndNotTwo() {
        // Were CR and LF two line ends, the LF would make a blank line and dispatch "a" on its own.
        assertParses("data: a\r\ndata: b\r\n\r\n", [event("a\nb")])
        assertParses("data: a\r\n", [])
    }

    func testLFCRIsTwoLineEnds() {
        assertParses("data: a\n\rdata: b\n\n", [event("a"), event("b")])
    }

    func testCRCRLFIsBlankLine() {
        assertParses("data: a\r\r\ndata: b\r\n\r\n", [event("a"), event("b")])
    }

    func testCRLFSplitAcrossCallsIsOneLineEnd() {
        var parser = SSEParser()
        XCTAssertEqual(feed(&parser, "data: a\r"), [])
        XCTAssertEqual(feed(&parser, "\ndata: b\r"), [])
        XCTAssertEqual(feed(&parser, ""), [], "an empty read must not forget the pending CR")
        XCTAssertEqual(feed(&parser, "\n"), [], "the LF completes the CRLF; it is not a blank line")
        XCTAssertEqual(feed(&parser, "\r"), [event("a\nb")])
        XCTAssertEqual(feed(&parser, "\n"), [], "LF right after the dispatching CR belongs to it")
        XCTAssertEqual(feed(&parser, "\n"), [], "a second blank line dispatches nothing")
    }

    func testCRDispatchesWithoutWaitingForTheNextByte() {
        var parser = SSEParser()
        XCTAssertEqual(feed(&parser, "data: a\r\r"), [event("a")])
    }

    func testSplitCRLFThroughByteBuffers() throws {
        var parser = SSEParser()
        var outputs: [SSEParser.Output] = []
        for piece in ["data: x\r", "\n", "\r", "\ndata: y\r\n\r\n"] {
            var buffer = ByteBuffer(string: piece)
            try parser.parse(&buffer) { outputs.append($0) }
            XCTAssertEqual(buffer.readableBytes, 0)
        }
        XCTAssertEqual(outputs, [event("x"), event("y")])
    }

    func testLineBreakAtEveryPositionOfLongLines() {
        // The scanner tests eight bytes at a time; put the terminator at every position within a word.
        for length in 0..<40 {
            let value = String((0..<length).map { Character(UnicodeScalar(UInt8(ascii: "a") + UInt8($0 % 26))) })
            for terminator in ["\n", "\r", "\r\n"] {
                var parser = SSEParser()
                let outputs = feed(&parser, "data: \(value)\(terminator)data: \(value)\(terminator)\(terminator)")
                XCTAssertEqual(
                    outputs,
                    [event("\(value)\n\(value)")],
                    "length \(length), terminator \(terminator.debugDescription)"
                )
            }
        }
    }

    func testBytesNearCRAndLFAreNotLineBreaks() {
        // VT, FF, TAB and the same low bits with the high bit set (0x8A, 0x8D) must not end a line;
        // a word-at-a-time scan with a sloppy mask would split on them.
        let special: [UInt8] = [0x0B, 0x0C, 0x09, 0x8A, 0x8D, 0x0E, 0x00, 0x1A, 0x1D]
        let line = Array("data: ".utf8) + special + special + Array("end".utf8)
        // 0x8A and 0x8D are stray continuation bytes: each decodes to U+FFFD.
        let decoded = "\u{0B}\u{0C}\t\u{FFFD}\u{FFFD}\u{0E}\u{0}\u{1A}\u{1D}"
        assertParses(line + [0x0A, 0x0A], [event(decoded + decoded + "end")])
    }

    func testBlankLinesOnlyProduceNothing() {
        assertParses("\n\r\n\r\n\n\r\r", [])
    }
}

final class ParserByteOrderMarkTests: XCTestCase {
    private let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    func testLeadingBOMIsStripped() {
        // Unstripped, the first field name would be "\u{FEFF}data" and nothing would fire.
        assertParses(self.bom + Array("data: a\n\n".utf8), [event("a")])
    }

    func testLeadingBOMSplitInTheMiddle() {
        var parser = SSEParser()
        XCTAssertEqual(feed(&parser, [0xEF]), [])
        XCTAssertEqual(feed(&parser, [0xBB]), [])
        XCTAssertEqual(feed(&parser, [0xBF] + Array("data: a\n".utf8)), [])
        XCTAssertEqual(feed(&parser, "\n"), [event("a")])
    }

    func testOnlyOneBOMIsStripped() {
        // The second BOM becomes part of the first field name, so that line is an unknown field.
        assertParses(self.bom + self.bom + Array("data: a\n\ndata: b\n\n".utf8), [event("b")])
    }

    func testBOMNotAtStartIsData() {
        assertParses("data: \u{FEFF}x\n\n", [event("\u{FEFF}x")])
        assertParses(
            Array("data: a\n\n".utf8) + self.bom + Array("data: b\n\ndata: c\n\n".utf8),
            [event("a"), event("c")]
        )
    }

    func testBOMInASecondReadIsNotAtStreamStart() {
        var parser = SSEParser()
        XCTAssertEqual(feed(&parser, "data: a\n\n"), [event("a")])
        XCTAssertEqual(feed(&parser, self.bom + Array("data: b\n\n".utf8)), [])
    }

    func testBOMAfterEmptyFirstLineIsData() {
        assertParses([0x0A] + self.bom + Array("data: a\n\ndata: b\n\n".utf8), [event("b")])
    }

    func testPartialBOMBytesAreKeptAsTheStartOfTheFirstLine() {
        // Dropping the held-back EF BB would turn the line into a valid `retry` field.
        assertParses([0xEF, 0xBB] + Array("retry: 5\nretry: 6\n".utf8), [.retry(6)])
        assertParses([0xEF] + Array("retry: 5\nretry: 6\n".utf8), [.retry(6)])
        // EF BB followed by a line end is a line of two bytes, not an empty (dispatching) line.
        assertParses([0xEF, 0xBB, 0x0A] + Array("data: a\n\n".utf8), [event("a")])
    }

    func testPartialBOMBytesCountTowardsTheLineLimit() {
        let limits = SSEParser.Limits(maxLineBytes: 3)
        assertParses([0xEF, 0xBB] + Array("xy\n".utf8), limits: limits, [], error: .lineTooLong(limit: 3))
        assertParses(self.bom + Array("abc\n".utf8), limits: limits, [])
    }

    func testPartialBOMDecodesAsReplacementInData() {
        // A stream that starts "EF BB" then "data" cannot carry data, but a BOM-like prefix inside a
        // value is decoded with replacement like any other ill-formed UTF-8.
        assertParses(Array("data: ".utf8) + [0xEF, 0xBB] + Array("\n\n".utf8), [event("\u{FFFD}")])
    }

    func testResetAllowsANewBOM() {
        var parser = SSEParser()
        XCTAssertEqual(feed(&parser, self.bom + Array("data: a\n\n".utf8)), [event("a")])
        parser.reset()
        XCTAssertEqual(feed(&parser, self.bom + Array("data: b\n\n".utf8)), [event("b")])
        parser.reset()
        XCTAssertEqual(feed(&parser, [0xEF, 0xBB]), [])
        XCTAssertEqual(feed(&parser, [0xBF] + Array("data: c\n\n".utf8)), [event("c")])
    }

    func testResetDuringBOMStartsOver() {
        var parser = SSEParser()
        XCTAssertEqual(feed(&parser, [0xEF, 0xBB]), [])
        parser.reset()
        XCTAssertEqual(feed(&parser, self.bom + Array("data: d\n\n".utf8)), [event("d")])
    }
}
