import CompressNIO
import Foundation
import NIOCore
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// `GzipTransport` in front of a recording transport, without sockets: after each flush, what the inner
/// transport received inflates to exactly what was written, however large the batch.
final class GzipTransportTests: XCTestCase {
    func testEveryFlushHandsOnAllThatWasWrittenWhateverTheBatchSize() throws {
        let inner = RecordingTransport()
        let gzip = GzipTransport(wrapping: inner, deflater: FragmentDeflater())
        gzip.writeHead(ResponseHead(status: .ok))
        XCTAssertEqual(inner.heads.first?.headers.last?.0, "Content-Encoding")
        let inflater = try ZlibDecompressor(algorithm: .gzip)
        var generator = SeededGenerator(seed: 7)
        var sent = ""
        var decoded = ""
        // Batches from one event to thousands, short and long: the reported failure was a sync flush whose
        // output did not fit the buffer sized for its (empty) input.
        for (count, size) in [(1, 20), (50, 90), (200, 90), (2000, 20), (2000, 90), (300, 8192), (5, 100_000)] {
            for index in 0..<count {
                let event = "id: \(index)\ndata: \(generator.payload(bytes: size))\n\n"
                sent += event
                gzip.writeShared(ByteBuffer(string: event))
            }
            gzip.flush()
            var received = inner.written
            inner.written.clear()
            decoded += String(buffer: try inflater.inflateAll(&received))
            XCTAssertEqual(
                decoded.utf8.count,
                sent.utf8.count,
                "\(count) events of \(size) bytes: all decodable after the flush"
            )
            XCTAssertTrue(decoded == sent, "\(count) events of \(size) bytes")
        }
        XCTAssertFalse(inner.aborted)
        // The end of the stream: a drain's retry, then the gzip trailer, all of it before the inner finish.
        gzip.writePayload(ByteBuffer(string: "retry: 1234\n\n"))
        gzip.flush()
        gzip.finish()
        XCTAssertTrue(inner.finished)
        var rest = inner.written
        decoded += String(buffer: try inflater.inflateAll(&rest))
        XCTAssertTrue(decoded.hasSuffix("retry: 1234\n\n"))
        XCTAssertFalse(inner.aborted)
    }

    /// The buffer handed on with a flush is held by the channel until its bytes are sent: a short flush must
    /// not pin kilobytes of spare capacity (a client that stops reading would pin that much per event).
    func testAShortFlushHandsOnAShortBuffer() throws {
        let inner = RecordingTransport()
        let gzip = GzipTransport(wrapping: inner, deflater: FragmentDeflater())
        var pieces: [ByteBuffer] = []
        for index in 0..<200 {
            gzip.writeShared(ByteBuffer(string: "id: \(index)\ndata: tick\n\n"))
            gzip.flush()
            pieces.append(inner.written)
            inner.written = ByteBuffer()
        }
        let data = pieces.reduce(0) { $0 + $1.readableBytes }
        let capacity = pieces.reduce(0) { $0 + $1.capacity }
        XCTAssertLessThanOrEqual(
            capacity,
            16 * data,
            "\(pieces.count) flushes: \(data) bytes in \(capacity) bytes of buffers"
        )
    }

    func testAFlushWithNothingWrittenWritesNothing() throws {
        let inner = RecordingTransport()
        let gzip = GzipTransport(wrapping: inner, deflater: FragmentDeflater())
        gzip.flush()
        XCTAssertEqual(inner.written.readableBytes, 0)
        XCTAssertEqual(inner.flushes, 1, "the flush itself goes through")
    }

    /// Writability, the lag probe, an abort and a plain response go to the inner transport as they are:
    /// only the stream's body is compressed.
    func testWritabilityHeldSinceAbortAndRespondPassThrough() throws {
        let inner = RecordingTransport()
        let gzip = GzipTransport(wrapping: inner, deflater: FragmentDeflater())
        XCTAssertTrue(gzip.isWritable)
        inner.isWritable = false
        XCTAssertFalse(gzip.isWritable)
        XCTAssertNil(gzip.heldSince())
        let since = NIODeadline.now()
        inner.held = since
        XCTAssertEqual(gzip.heldSince(), since)
        gzip.respond(ResponseHead(status: .serviceUnavailable), body: "feed unavailable\n")
        XCTAssertEqual(inner.responses.count, 1)
        XCTAssertEqual(inner.responses.first?.body, "feed unavailable\n", "a plain response is not compressed")
        XCTAssertEqual(inner.heads.count, 0)
        gzip.abort()
        XCTAssertTrue(inner.aborted)
        XCTAssertFalse(inner.finished)
        XCTAssertEqual(inner.written.readableBytes, 0, "an abort writes no trailer")
    }

    /// The head gets `Content-Encoding: gzip` after the stream's own headers; the framing is raw (the
    /// inner transport frames the compressed bytes).
    func testTheHeadSaysGzipAndKeepsItsHeaders() throws {
        let inner = RecordingTransport()
        let gzip = GzipTransport(wrapping: inner, deflater: FragmentDeflater())
        XCTAssertEqual(gzip.framing, .raw)
        var head = ResponseHead.eventStream()
        head.headers.append(("Vary", "Accept-Encoding"))
        gzip.writeHead(head)
        let headers = try XCTUnwrap(inner.heads.first).headers
        XCTAssertEqual(Array(headers.dropLast().map { $0.0 }), head.headers.map { $0.0 })
        XCTAssertEqual(headers.last?.0, "Content-Encoding")
        XCTAssertEqual(headers.last?.1, "gzip")
    }

    /// A stream that ends before any event is still a whole gzip member (header and trailer): a client
    /// decodes it to nothing, without an error.
    func testFinishingAnEmptyStreamWritesAWholeEmptyMember() throws {
        let inner = RecordingTransport()
        let gzip = GzipTransport(wrapping: inner, deflater: FragmentDeflater())
        gzip.finish()
        XCTAssertTrue(inner.finished)
        var member = inner.written
        XCTAssertEqual(member.getBytes(at: member.readerIndex, length: 2), [0x1F, 0x8B], "the gzip magic")
        let inflater = try ZlibDecompressor(algorithm: .gzip)
        XCTAssertEqual(try inflater.inflateAll(&member).readableBytes, 0)
    }

    /// Two flushes, each decodable on its own as it arrives, continue one deflate stream (one member).
    func testEachFlushIsDecodableWhenItArrives() throws {
        let inner = RecordingTransport()
        let gzip = GzipTransport(wrapping: inner, deflater: FragmentDeflater())
        let inflater = try ZlibDecompressor(algorithm: .gzip)
        for index in 0..<3 {
            let event = "id: \(index)\ndata: tick \(index)\n\n"
            gzip.writeShared(ByteBuffer(string: event))
            gzip.flush()
            var piece = inner.written
            inner.written = ByteBuffer()
            XCTAssertEqual(String(buffer: try inflater.inflateAll(&piece)), event, "flush \(index)")
            if index > 0 {
                XCTAssertNotEqual(piece.getBytes(at: 0, length: 2), [0x1F, 0x8B], "no new member per flush")
            }
        }
        XCTAssertEqual(inner.flushes, 3)
    }

    /// Sharing fragments over chunked HTTP/1.1: the transport writes each shared fragment's chunk as it
    /// is (a slice of the one buffer every client gets), puts its own bytes (the prelude, a notice) in
    /// fragments of their own before it, and ends with a trailer for exactly what it wrote.
    func testSharedFragmentsGoOutAsTheyAreBetweenTheClientsOwnBytes() throws {
        let inner = RecordingTransport(framing: .chunked)
        let deflater = FragmentDeflater()
        let gzip = GzipTransport(wrapping: inner, deflater: deflater, sharesFragments: true)
        XCTAssertEqual(gzip.framing, .gzipChunked)
        XCTAssertEqual(
            GzipTransport(wrapping: RecordingTransport(), deflater: deflater, sharesFragments: true).framing,
            .gzipRaw
        )
        var sent = "retry: 2000\n\n"
        gzip.writePayload(ByteBuffer(string: sent))
        for batch in 0..<5 {
            let events = (0..<batch + 1).map { ByteBuffer(string: "id: \(batch).\($0)\ndata: tick\n\n") }
            let fragment = GzipFragment.deflated(events, chunked: true, deflater: deflater)
            gzip.writeShared(fragment)
            sent += events.map { String(buffer: $0) }.joined()
            if batch == 2 {
                let notice = ByteBuffer(string: ": keepalive\n\n")
                gzip.writeShared(StreamFraming.gzipChunked.frame(notice, allocator: ByteBufferAllocator()))
                sent += String(buffer: notice)
            }
            gzip.flush()
        }
        gzip.writePayload(ByteBuffer(string: "retry: 1234\n\n"))
        sent += "retry: 1234\n\n"
        gzip.finish()
        XCTAssertTrue(inner.finished)
        var body = try Self.dechunk(inner.written)
        XCTAssertEqual(body.getBytes(at: body.readerIndex, length: 2), [0x1F, 0x8B])
        let decoded = try ZlibDecompressor(algorithm: .gzip).inflateAll(&body)
        XCTAssertEqual(String(buffer: decoded), sent, "decoded byte for byte, trailer checked")
        XCTAssertEqual(try GzipFragmentTests.gunzipWithPython(try Self.dechunk(inner.written)), Data(sent.utf8))
    }

    /// The body of a chunked stream (each chunk `hex\r\n bytes \r\n`).
    static func dechunk(_ stream: ByteBuffer) throws -> ByteBuffer {
        var input = stream
        var body = ByteBuffer()
        while input.readableBytes > 0 {
            let line = try XCTUnwrap(input.readableBytesView.firstIndex(of: UInt8(ascii: "\r")))
            let hex = try XCTUnwrap(input.readString(length: line - input.readerIndex))
            input.moveReaderIndex(forwardBy: 2)
            let length = try XCTUnwrap(Int(hex, radix: 16))
            body.writeImmutableBuffer(try XCTUnwrap(input.readSlice(length: length)))
            input.moveReaderIndex(forwardBy: 2)
        }
        return body
    }
}
