import NIOCore
import XCTest

@testable import SSEBench

/// The load client's own HTTP/1.1 framing: `ChunkedBodyDecoder` (chunk sizes, extensions, the last
/// chunk, trailers, bad input, input split anywhere) and the hand-parsed `HTTPResponseHead`.
final class ChunkedBodyDecoderTests: XCTestCase {
    /// Body and end state of decoding `wire` delivered in pieces of the given sizes (the rest in one).
    private func decode(_ wire: String, pieces: [Int] = []) throws -> (body: String, finished: Bool, left: String) {
        var decoder = ChunkedBodyDecoder()
        var body = ""
        var rest = ByteBuffer(string: wire)
        var left = ""
        for size in pieces + [rest.readableBytes] where rest.readableBytes > 0 {
            var piece = rest.readSlice(length: min(size, rest.readableBytes))!
            try decoder.decode(&piece) { body += String(buffer: $0) }
            left += String(buffer: piece)
        }
        return (body, decoder.isFinished, left)
    }

    private static let vectors: [(wire: String, body: String)] = [
        ("5\r\nhello\r\n0\r\n\r\n", "hello"),
        ("5;name=value\r\nhello\r\n6 ; x=\"y\"\r\n world\r\n0;last\r\n\r\n", "hello world"),
        ("3\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: two\r\n\r\n", "abc"),
        (
            "A\r\n0123456789\r\na\r\nabcdefghij\r\n1F\r\n" + String(repeating: "z", count: 31) + "\r\n0\r\n\r\n",
            "0123456789abcdefghij" + String(repeating: "z", count: 31)
        ),
        ("000\r\n\r\n", ""),
        // Leading zeros are not significant digits: 17 digits here, a size of 10.
        ("0000000000000000a\r\n0123456789\r\n" + String(repeating: "0", count: 20) + "\r\n\r\n", "0123456789"),
    ]

    func testVectors() throws {
        for (wire, expected) in Self.vectors {
            let result = try self.decode(wire)
            XCTAssertEqual(result.body, expected, wire.debugDescription)
            XCTAssertTrue(result.finished, wire.debugDescription)
            XCTAssertEqual(result.left, "", wire.debugDescription)
        }
    }

    func testEveryVectorSplitAtEveryOffsetAndByteByByteGivesTheSameBody() throws {
        for (wire, expected) in Self.vectors {
            for offset in 0...wire.utf8.count {
                let split = try self.decode(wire, pieces: [offset])
                XCTAssertEqual(split.body, expected, "\(wire.debugDescription) split at \(offset)")
                XCTAssertTrue(split.finished, "\(wire.debugDescription) split at \(offset)")
            }
            let bytewise = try self.decode(wire, pieces: Array(repeating: 1, count: wire.utf8.count))
            XCTAssertEqual(bytewise.body, expected, "\(wire.debugDescription) byte by byte")
            XCTAssertTrue(bytewise.finished)
        }
    }

    func testUnfinishedBodyIsNotFinishedAndChunkDataComesOutAsItArrives() throws {
        let partial = try self.decode("a\r\n01234")
        XCTAssertEqual(partial.body, "01234")
        XCTAssertFalse(partial.finished)
        XCTAssertFalse(try self.decode("5\r\nhello\r\n").finished, "no last chunk yet")
        XCTAssertFalse(try self.decode("5\r\nhello\r\n0\r\n\r").finished, "the final LF is missing")
    }

    func testBytesAfterTheEndAreLeftInTheInput() throws {
        let result = try self.decode("2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK")
        XCTAssertEqual(result.body, "ok")
        XCTAssertTrue(result.finished)
        XCTAssertEqual(result.left, "HTTP/1.1 200 OK")
    }

    func testChunkDataIsSlicedNotCopiedByteWise() throws {
        var decoder = ChunkedBodyDecoder()
        var input = ByteBuffer(string: "5\r\nhello\r\n6\r\n world\r\n")
        var pieces: [String] = []
        try decoder.decode(&input) { pieces.append(String(buffer: $0)) }
        XCTAssertEqual(pieces, ["hello", " world"], "one slice per chunk in one read")
    }

    func testMalformedInputThrows() {
        let malformed = [
            "zz\r\nhello\r\n",  // not hex
            "\r\nhello\r\n",  // no size at all
            "5\r\nhelloXX0\r\n\r\n",  // data not followed by CRLF
            "5\rXhello\r\n",  // CR not followed by LF
            "5x\r\nhello\r\n",  // junk after the size
            "1000000000000000\r\n",  // 16 hex digits: too large
            "0001000000000000000\r\n",  // 16 significant hex digits after zeros: too large
            "0\r\nTrailer: x\rY",  // trailer CR without LF
        ]
        for wire in malformed {
            XCTAssertThrowsError(try self.decode(wire), wire.debugDescription) { error in
                XCTAssertTrue(error is ChunkedBodyDecoder.MalformedChunk, "\(wire.debugDescription): \(error)")
            }
            XCTAssertThrowsError(
                try self.decode(wire, pieces: Array(repeating: 1, count: wire.utf8.count)),
                "\(wire.debugDescription) byte by byte"
            )
        }
    }

    // MARK: response head

    private func head(_ text: String) throws -> (head: HTTPResponseHead, length: Int)? {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { try HTTPResponseHead.parse($0) }
    }

    func testResponseHeadFramingAndEncoding() throws {
        let chunked = try XCTUnwrap(
            try self.head(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTRANSFER-encoding:  chunked \r\ncontent-encoding: gzip\r\n\r\nbody"
            )
        )
        XCTAssertEqual(chunked.head, HTTPResponseHead(status: 200, framing: .chunked, gzip: true))
        XCTAssertEqual(
            chunked.length,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTRANSFER-encoding:  chunked \r\ncontent-encoding: gzip\r\n\r\n"
                .utf8.count
        )

        let sized = try XCTUnwrap(try self.head("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"))
        XCTAssertEqual(sized.head, HTTPResponseHead(status: 404, framing: .length(9), gzip: false))

        let bareLF = try XCTUnwrap(try self.head("HTTP/1.0 200 OK\nContent-Type: text/event-stream\n\ndata: x\n\n"))
        XCTAssertEqual(bareLF.head, HTTPResponseHead(status: 200, framing: .untilClose, gzip: false))
        XCTAssertEqual(bareLF.length, "HTTP/1.0 200 OK\nContent-Type: text/event-stream\n\n".utf8.count)
    }

    func testIncompleteHeadWaitsAndBadHeadsThrow() throws {
        XCTAssertNil(try self.head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"))
        XCTAssertNil(try self.head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r"))
        XCTAssertThrowsError(try self.head("SSH-2.0-OpenSSH\r\n\r\n"))
        XCTAssertThrowsError(try self.head("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"))
        XCTAssertThrowsError(try self.head("HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n"))
        XCTAssertThrowsError(
            try self.head(
                "HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: HTTPResponseHead.maximumSize) + "\r\n"
            )
        )
    }
}
