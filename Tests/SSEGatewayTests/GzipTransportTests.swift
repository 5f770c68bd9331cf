import CompressNIO
import NIOCore
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// `GzipTransport` in front of a recording transport, without sockets: after each flush, what the inner
/// transport received inflates to exactly what was written, however large the batch.
final class GzipTransportTests: XCTestCase {
    func testEveryFlushHandsOnAllThatWasWrittenWhateverTheBatchSize() throws {
        let inner = RecordingTransport()
        let gzip = try GzipTransport(wrapping: inner)
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
        let gzip = try GzipTransport(wrapping: inner)
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
        let gzip = try GzipTransport(wrapping: inner)
        gzip.flush()
        XCTAssertEqual(inner.written.readableBytes, 0)
        XCTAssertEqual(inner.flushes, 1, "the flush itself goes through")
    }
}
