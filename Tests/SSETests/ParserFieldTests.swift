import NIOCore
import SSE
import XCTest

final class ParserCommentAndFieldSyntaxTests: XCTestCase {
    func testCommentsAreIgnored() {
        assertParses(": hello\n:\n::\n:data: x\n\n", [])
    }

    func testCommentInsideABlockDoesNotBreakIt() {
        assertParses("data: a\n: keep-alive\ndata: b\n\n", [event("a\nb")])
    }

    func testFieldWithoutColonHasEmptyValue() {
        assertParses("data\n\n", [event("")])
        assertParses("id\ndata\n\n", [event(id: "", "")], lastEventID: "")
    }

    func testExactlyOneLeadingSpaceIsStripped() {
        assertParses("data:  x\n\n", [event(" x")])
        assertParses("data:   x \n\n", [event("  x ")])
        assertParses("data:x\n\n", [event("x")])
        assertParses("data: \n\n", [event("")])
        assertParses("data:\tx\n\n", [event("\tx")], lastEventID: "")
        assertParses("id:  7\n\n", [event(id: " 7", nil)], lastEventID: " 7")
        assertParses("event:  t\ndata\n\n", [event(type: " t", "")])
    }

    func testOnlyTheFirstColonSeparatesNameFromValue() {
        assertParses("data: a: b:c\n\n", [event("a: b:c")])
        assertParses("data::x\n\n", [event(":x")])
    }

    func testUnknownFieldsAreIgnored() {
        assertParses("foo: bar\ndata: a\nbaz\n: x\nretryx: 5\nidx: 9\n\n", [event("a")])
        // A space before the colon is part of the field name.
        assertParses("data : x\n\n", [])
    }

    func testFieldNamesAreCaseSensitive() {
        assertParses("Data: x\n\n", [])
        assertParses("DATA: x\nEvent: e\nID: 1\nRetry: 5\ndata: y\n\n", [event("y")])
    }

    func testNULInAFieldNameMakesItUnknown() {
        assertParses("da\u{0}ta: x\n\n", [])
    }
}

final class ParserDataAndEventFieldTests: XCTestCase {
    func testMultiLineData() {
        assertParses("data: one\ndata: two\ndata:\ndata: four\n\n", [event("one\ntwo\n\nfour")])
    }

    func testOnlyOneTrailingLFIsRemoved() {
        assertParses("data: a\ndata\n\n", [event("a\n")])
        assertParses("data\ndata\ndata\n\n", [event("\n\n")])
    }

    func testEventType() {
        assertParses("event: update\ndata: 1\n\n", [event(type: "update", "1")])
    }

    func testLaterEventLineReplacesEarlierOne() {
        assertParses("event: a\nevent: b\ndata\n\n", [event(type: "b", "")])
    }

    func testEmptyEventTypeMeansDefault() {
        assertParses("event:\ndata: x\n\n", [event("x")])
        assertParses("event: a\nevent\ndata: x\n\n", [event("x")])
    }

    func testEventTypeDoesNotCarryOverToTheNextBlock() {
        assertParses("event: a\ndata: 1\n\ndata: 2\n\n", [event(type: "a", "1"), event("2")])
    }

    func testEventTypeWithoutDataDoesNotDispatchAndIsReset() {
        assertParses("event: x\n\n", [])
        assertParses("event: x\n\ndata: y\n\n", [event("y")])
    }

    func testEventTypeMayContainNUL() {
        assertParses("event: a\u{0}b\ndata\n\n", [event(type: "a\u{0}b", "")])
    }

    func testDataMayContainNUL() {
        assertParses("data: a\u{0}b\n\n", [event("a\u{0}b")])
    }
}

final class ParserIDFieldTests: XCTestCase {
    func testIDIsAttachedToItsBlockOnly() {
        assertParses(
            "id: 5\ndata: a\n\ndata: b\n\n",
            [event(id: "5", "a"), event("b")],
            lastEventID: "5"
        )
    }

    func testIDOnlyBlock() {
        assertParses("id: 42\n\n", [event(id: "42", nil)], lastEventID: "42")
    }

    func testIDOnlyBlockIgnoresEventType() {
        assertParses("id: 7\nevent: ping\n\n", [event(id: "7", nil)], lastEventID: "7")
    }

    func testEmptyIDResetsLastEventID() {
        assertParses(
            "id: 5\ndata: a\n\nid:\ndata: b\n\n",
            [event(id: "5", "a"), event(id: "", "b")],
            lastEventID: ""
        )
        assertParses("id: 5\n\nid\n\n", [event(id: "5", nil), event(id: "", nil)], lastEventID: "")
    }

    func testIDContainingNULIsIgnoredEntirely() {
        assertParses(
            "id: 1\n\nid: a\u{0}b\ndata: x\n\n",
            [event(id: "1", nil), event("x")],
            lastEventID: "1"
        )
        assertParses("id: \u{0}\n\n", [], lastEventID: "")
    }

    func testIDContainingNULDoesNotReplaceAnEarlierIDOfTheBlock() {
        assertParses("id: 1\nid: \u{0}\ndata: x\n\n", [event(id: "1", "x")], lastEventID: "1")
    }

    func testLaterIDInTheSameBlockReplacesEarlierOne() {
        assertParses("id: 1\nid: 2\ndata: x\n\n", [event(id: "2", "x")], lastEventID: "2")
    }

    func testIDMayFollowData() {
        assertParses("data: x\nid: 3\n\n", [event(id: "3", "x")], lastEventID: "3")
    }

    func testLastEventIDIsSetBeforeDispatch() {
        // The standard updates the buffer on the id line itself, even if the block never completes.
        assertParses("id: 9\ndata: x\n", [], lastEventID: "9")
    }

    func testIDWithUnicode() {
        assertParses("id: ключ-€\ndata\n\n", [event(id: "ключ-€", "")], lastEventID: "ключ-€")
    }
}

final class ParserRetryFieldTests: XCTestCase {
    func testValidRetryValues() {
        assertParses("retry: 0\nretry: 3000\nretry:15\nretry: 007\n", [.retry(0), .retry(3000), .retry(15), .retry(7)])
    }

    func testInvalidRetryValuesAreIgnored() {
        assertParses(
            "retry: 10a\nretry: -1\nretry:\nretry\nretry:  5\nretry: 5 \nretry: +5\nretry: 1e3\nretry: 1.5\nretry: \u{0663}\n",
            []
        )
    }

    func testRetryIsEmittedWhenItsLineIsParsedNotAtDispatch() {
        assertParses("data: a\nretry: 5\n\n", [.retry(5), event("a")])
        assertParses("retry: 5\n", [.retry(5)])
    }

    func testRetryDoesNotMakeABlockDispatch() {
        assertParses("retry: 5\n\n", [.retry(5)])
    }

    func testRetryThatDoesNotFitInIntIsIgnored() {
        assertParses("retry: \(Int.max)\n", [.retry(Int.max)])
        assertParses("retry: 9223372036854775808\nretry: 99999999999999999999999999\n", [])
    }
}

final class ParserDispatchTests: XCTestCase {
    func testPartialBlockAtEndIsNotDispatched() {
        assertParses("data: a\n", [])
        assertParses("data: a", [])
        assertParses("id: 1\n", [], lastEventID: "1")
    }

    func testTwoBlankLinesDispatchOnce() {
        assertParses("data: a\n\n\n", [event("a")])
        assertParses("id: 1\n\n\n\n", [event(id: "1", nil)], lastEventID: "1")
    }

    func testResetDropsPartialBlockAndPartialLine() {
        var parser = SSEParser()
        XCTAssertEqual(feed(&parser, "id: 3\ndata: a\n"), [])
        parser.reset()
        XCTAssertEqual(parser.lastEventID, "3", "reset keeps the last event ID for Last-Event-ID")
        XCTAssertEqual(feed(&parser, "\n"), [], "the dropped block must not be dispatched")
        XCTAssertEqual(feed(&parser, "data: b"), [])
        parser.reset()
        XCTAssertEqual(feed(&parser, "data: c\n\n"), [event("c")], "the dropped partial line must not prefix this one")
    }

    func testResetBetweenCRAndLF() {
        var parser = SSEParser()
        XCTAssertEqual(feed(&parser, "data: a\r"), [])
        parser.reset()
        // The block ended by that CR is gone: the LF must not dispatch it, whichever way it is read.
        XCTAssertEqual(feed(&parser, "\ndata: b\n\n"), [event("b")])
    }

    func testManyEventsInOneRead() {
        let input = (0..<50).map { "id: \($0)\nevent: e\($0 % 3)\ndata: payload \($0)\n\n" }.joined()
        let expected = (0..<50).map { event(id: "\($0)", type: "e\($0 % 3)", "payload \($0)") }
        assertParses(input, expected, lastEventID: "49")
    }

    func testByteBufferWithOffsetReaderIndex() throws {
        var parser = SSEParser()
        var buffer = ByteBuffer(string: "ignored\ndata: a\n\n")
        buffer.moveReaderIndex(forwardBy: 8)
        var outputs: [SSEParser.Output] = []
        try parser.parse(&buffer) { outputs.append($0) }
        XCTAssertEqual(outputs, [event("a")])
        XCTAssertEqual(buffer.readerIndex, buffer.writerIndex)
    }
}

final class ParserUTF8Tests: XCTestCase {
    func testMultiByteCharacters() {
        assertParses("event: 日本\ndata: €😀 ñ\n\n", [event(type: "日本", "€😀 ñ")])
    }

    func testInvalidBytesAreReplaced() {
        assertParses(Array("data: a".utf8) + [0xFF] + Array("b\n\n".utf8), [event("a\u{FFFD}b")])
        assertParses(Array("event: ".utf8) + [0xC3] + Array("\ndata\n\n".utf8), [event(type: "\u{FFFD}", "")])
        assertParses(
            Array("id: ".utf8) + [0x80, 0x80] + Array("\n\n".utf8),
            [event(id: "\u{FFFD}\u{FFFD}", nil)],
            lastEventID: "\u{FFFD}\u{FFFD}"
        )
    }

    func testTruncatedSequenceIsOneReplacementCharacter() {
        // E2 82 is the start of "€" (E2 82 AC) cut short: one maximal subpart, one U+FFFD.
        assertParses(Array("data: ".utf8) + [0xE2, 0x82] + Array("x\n\n".utf8), [event("\u{FFFD}x")])
    }

    func testSequenceCutByALineEndIsReplacedOnBothSides() {
        assertParses(
            Array("data: ".utf8) + [0xE2, 0x82] + Array("\ndata: ".utf8) + [0xAC] + Array("\n\n".utf8),
            [event("\u{FFFD}\n\u{FFFD}")]
        )
    }

    func testOverlongAndSurrogateEncodingsAreReplaced() {
        // C0 AF is an overlong "/", ED A0 80 a UTF-16 surrogate: neither may decode to a scalar.
        // Each is replaced per maximal subpart: two U+FFFD for C0 AF, three for ED A0 80.
        let input = Array("data: ".utf8) + [0xC0, 0xAF] + [0xED, 0xA0, 0x80] + Array("\n\n".utf8)
        assertParses(input, [event(String(repeating: "\u{FFFD}", count: 5))])
    }
}
