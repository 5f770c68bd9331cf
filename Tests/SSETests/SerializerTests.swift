import NIOCore
import SSE
import XCTest

final class SerializerTests: XCTestCase {
    /// Writes `event`, checks the bytes and that `encodedLength` predicted them exactly.
    private func assertWrites(
        _ event: ServerSentEvent,
        _ expected: String,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        var buffer = ByteBuffer()
        SSESerializer.write(event, into: &buffer)
        XCTAssertEqual(String(buffer: buffer), expected, file: file, line: line)
        XCTAssertEqual(
            SSESerializer.encodedLength(of: event),
            expected.utf8.count,
            "encodedLength",
            file: file,
            line: line
        )
    }

    func testTypicalEvent() {
        self.assertWrites(
            ServerSentEvent(id: "1", type: "update", data: "hello"),
            "id: 1\nevent: update\ndata: hello\n\n"
        )
    }

    func testDataOnly() {
        self.assertWrites(ServerSentEvent(data: "{\"a\":1}"), "data: {\"a\":1}\n\n")
    }

    func testEmptyOrNilTypeWritesNoEventLine() {
        self.assertWrites(ServerSentEvent(type: "", data: "x"), "data: x\n\n")
        self.assertWrites(ServerSentEvent(type: nil, data: "x"), "data: x\n\n")
    }

    func testMultiLineData() {
        self.assertWrites(ServerSentEvent(data: "a\nb\nc"), "data: a\ndata: b\ndata: c\n\n")
    }

    func testDataWithCRAndCRLFBecomesSeparateLines() {
        self.assertWrites(ServerSentEvent(data: "a\rb"), "data: a\ndata: b\n\n")
        self.assertWrites(ServerSentEvent(data: "a\r\nb"), "data: a\ndata: b\n\n")
        self.assertWrites(ServerSentEvent(data: "a\r\rb"), "data: a\ndata:\ndata: b\n\n")
        self.assertWrites(ServerSentEvent(data: "a\n\r\nb"), "data: a\ndata:\ndata: b\n\n")
    }

    func testEmptyData() {
        self.assertWrites(ServerSentEvent(data: ""), "data:\n\n")
    }

    func testEmptyLinesInData() {
        self.assertWrites(ServerSentEvent(data: "\n"), "data:\ndata:\n\n")
        self.assertWrites(ServerSentEvent(data: "a\n"), "data: a\ndata:\n\n")
        self.assertWrites(ServerSentEvent(data: "\na"), "data:\ndata: a\n\n")
    }

    func testLeadingSpacesSurvive() {
        self.assertWrites(ServerSentEvent(id: " 1", type: " t", data: "  x"), "id:  1\nevent:  t\ndata:   x\n\n")
    }

    func testIDOnly() {
        self.assertWrites(ServerSentEvent(id: "42", data: nil), "id: 42\n\n")
    }

    func testIDOnlyDropsType() {
        self.assertWrites(ServerSentEvent(id: "42", type: "ping", data: nil), "id: 42\n\n")
    }

    func testEmptyID() {
        self.assertWrites(ServerSentEvent(id: "", data: nil), "id:\n\n")
        self.assertWrites(ServerSentEvent(id: "", data: "x"), "id:\ndata: x\n\n")
    }

    func testUnrepresentableIDIsDropped() {
        self.assertWrites(ServerSentEvent(id: "a\nb", data: "x"), "data: x\n\n")
        self.assertWrites(ServerSentEvent(id: "a\rb", data: "x"), "data: x\n\n")
        self.assertWrites(ServerSentEvent(id: "a\u{0}b", data: "x"), "data: x\n\n")
        self.assertWrites(ServerSentEvent(id: "a\r\nb", type: "t", data: "x"), "event: t\ndata: x\n\n")
    }

    func testIDOnlyWithUnrepresentableIDWritesNothing() {
        self.assertWrites(ServerSentEvent(id: "a\nb", data: nil), "")
        self.assertWrites(ServerSentEvent(id: nil, data: nil), "")
    }

    func testUnrepresentableTypeIsDropped() {
        self.assertWrites(ServerSentEvent(id: "1", type: "a\nb", data: "x"), "id: 1\ndata: x\n\n")
        self.assertWrites(ServerSentEvent(type: "a\rb", data: "x"), "data: x\n\n")
    }

    func testTypeMayContainNUL() {
        self.assertWrites(ServerSentEvent(type: "a\u{0}b", data: "x"), "event: a\u{0}b\ndata: x\n\n")
    }

    func testUnicode() {
        self.assertWrites(ServerSentEvent(id: "€", type: "日本", data: "😀\nñ"), "id: €\nevent: 日本\ndata: 😀\ndata: ñ\n\n")
    }

    func testWriteAppendsAfterExistingBytes() {
        var buffer = ByteBuffer(string: "retry: 1\n")
        SSESerializer.write(ServerSentEvent(data: "a"), into: &buffer)
        SSESerializer.write(ServerSentEvent(id: "2", data: nil), into: &buffer)
        XCTAssertEqual(String(buffer: buffer), "retry: 1\ndata: a\n\nid: 2\n\n")
    }

    func testEncodedLengthOfALargeEvent() {
        var buffer = ByteBuffer()
        let event = ServerSentEvent(id: "abc", type: "t", data: String(repeating: "line\n", count: 1000))
        let length = SSESerializer.encodedLength(of: event)
        SSESerializer.write(event, into: &buffer)
        XCTAssertEqual(buffer.readableBytes, length)
        XCTAssertEqual(length, 8 + 9 + 1000 * 11 + 6 + 1)
    }

    func testComment() {
        var buffer = ByteBuffer()
        SSESerializer.writeComment("keep-alive", into: &buffer)
        XCTAssertEqual(String(buffer: buffer), ": keep-alive\n")
    }

    func testEmptyComment() {
        var buffer = ByteBuffer()
        SSESerializer.writeComment("", into: &buffer)
        XCTAssertEqual(String(buffer: buffer), ":\n")
    }

    func testMultiLineComment() {
        var buffer = ByteBuffer()
        SSESerializer.writeComment("a\nb\r\nc\rd\n", into: &buffer)
        XCTAssertEqual(String(buffer: buffer), ": a\n: b\n: c\n: d\n:\n")
    }

    func testCommentIsInvisibleToTheParserEvenInsideABlock() throws {
        var buffer = ByteBuffer(string: "data: a\n")
        SSESerializer.writeComment("x\ndata: injected\rid: 9", into: &buffer)
        buffer.writeString("data: b\n\n")
        var parser = SSEParser()
        var outputs: [SSEParser.Output] = []
        try parser.parse(&buffer) { outputs.append($0) }
        XCTAssertEqual(outputs, [event("a\nb")])
        XCTAssertEqual(parser.lastEventID, "")
    }

    func testRetry() {
        var buffer = ByteBuffer()
        SSESerializer.writeRetry(milliseconds: 3000, into: &buffer)
        SSESerializer.writeRetry(milliseconds: 0, into: &buffer)
        SSESerializer.writeRetry(milliseconds: Int64.max, into: &buffer)
        XCTAssertEqual(String(buffer: buffer), "retry: 3000\nretry: 0\nretry: 9223372036854775807\n")
    }

    func testNegativeRetryWritesNothing() {
        var buffer = ByteBuffer()
        SSESerializer.writeRetry(milliseconds: -1, into: &buffer)
        SSESerializer.writeRetry(milliseconds: Int64.min, into: &buffer)
        XCTAssertEqual(buffer.readableBytes, 0)
    }

    func testRetryParsesBack() throws {
        var buffer = ByteBuffer()
        SSESerializer.writeRetry(milliseconds: 1500, into: &buffer)
        SSESerializer.write(ServerSentEvent(data: "x"), into: &buffer)
        var parser = SSEParser()
        var outputs: [SSEParser.Output] = []
        try parser.parse(&buffer) { outputs.append($0) }
        XCTAssertEqual(outputs, [.retry(1500), event("x")])
    }

    func testHandBuiltEventsParseBackNormalised() throws {
        // Events the parser cannot produce still come back as what a browser would see.
        let cases: [(ServerSentEvent, ServerSentEvent)] = [
            (ServerSentEvent(data: "a\r\nb\rc"), ServerSentEvent(data: "a\nb\nc")),
            (ServerSentEvent(id: "x\ny", data: "d"), ServerSentEvent(data: "d")),
            (ServerSentEvent(type: "", data: "d"), ServerSentEvent(data: "d")),
            (ServerSentEvent(type: "t\r", data: "d"), ServerSentEvent(data: "d")),
            (ServerSentEvent(id: "1", type: "t", data: nil), ServerSentEvent(id: "1", data: nil)),
        ]
        for (written, expected) in cases {
            var buffer = ByteBuffer()
            SSESerializer.write(written, into: &buffer)
            var parser = SSEParser()
            var outputs: [SSEParser.Output] = []
            try parser.parse(&buffer) { outputs.append($0) }
            XCTAssertEqual(outputs, [.event(expected)], "\(written)")
        }
    }
}
