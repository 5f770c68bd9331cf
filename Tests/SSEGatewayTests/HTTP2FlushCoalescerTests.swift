import NIOCore
import NIOEmbedded
import XCTest

@testable import SSEGateway

/// `DeferredFlushes` and `HTTP2FlushCoalescer` on an embedded channel: during a pass a connection's
/// flushes are held and done once at the end; outside a pass, and past the byte bound, they go through.
final class HTTP2FlushCoalescerTests: XCTestCase {
    /// Counts the flushes and bytes that get past the coalescer (towards the socket).
    private final class FlushRecorder: ChannelOutboundHandler {
        typealias OutboundIn = IOData
        var flushes = 0
        var bytes = 0
        var bytesAtFlush: [Int] = []

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            self.bytes += self.unwrapOutboundIn(data).readableBytes
            context.write(data, promise: promise)
        }

        func flush(context: ChannelHandlerContext) {
            self.flushes += 1
            self.bytesAtFlush.append(self.bytes)
            context.flush()
        }
    }

    private func connection(_ deferred: DeferredFlushes) throws -> (EmbeddedChannel, FlushRecorder) {
        let recorder = FlushRecorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.pipeline.syncOperations.addHandler(HTTP2FlushCoalescer(deferred: deferred))
        return (channel, recorder)
    }

    private func frame(_ size: Int) -> IOData {
        .byteBuffer(ByteBuffer(repeating: 0x61, count: size))
    }

    func testFlushesOutsideAPassGoThroughAtOnce() throws {
        let deferred = DeferredFlushes()
        let (channel, recorder) = try self.connection(deferred)
        channel.write(self.frame(100), promise: nil)
        channel.flush()
        channel.write(self.frame(100), promise: nil)
        channel.flush()
        XCTAssertEqual(recorder.flushes, 2)
        XCTAssertEqual(recorder.bytesAtFlush, [100, 200])
        _ = try channel.finish()
    }

    func testStreamsFlushingDuringAPassMakeOneFlushPerConnectionAtTheEnd() throws {
        let deferred = DeferredFlushes()
        let (first, firstRecorder) = try self.connection(deferred)
        let (second, secondRecorder) = try self.connection(deferred)
        deferred.run {
            for _ in 0..<100 {  // 100 streams of the first connection, each writing and flushing
                first.write(self.frame(250), promise: nil)
                first.flush()
            }
            second.write(self.frame(250), promise: nil)
            second.flush()
            second.flush()
            XCTAssertEqual(firstRecorder.flushes, 0, "held while the pass runs")
            XCTAssertEqual(secondRecorder.flushes, 0)
        }
        XCTAssertEqual(firstRecorder.flushes, 1)
        XCTAssertEqual(firstRecorder.bytesAtFlush, [25_000])
        XCTAssertEqual(secondRecorder.flushes, 1)
        XCTAssertEqual(secondRecorder.bytesAtFlush, [250])

        // The next pass holds again; a connection with nothing to flush is not flushed.
        deferred.run {
            first.write(self.frame(10), promise: nil)
            first.flush()
        }
        XCTAssertEqual(firstRecorder.flushes, 2)
        XCTAssertEqual(secondRecorder.flushes, 1)
        _ = try first.finish()
        _ = try second.finish()
    }

    func testAFlushGoesThroughOnceTheHeldBytesReachTheBound() throws {
        let deferred = DeferredFlushes()
        let (channel, recorder) = try self.connection(deferred)
        let piece = 10 * 1024
        deferred.run {
            for _ in 0..<7 {
                channel.write(self.frame(piece), promise: nil)
                channel.flush()
            }
        }
        // 10, 20, 30 KiB held; at 40 KiB (over 32) the flush goes through; the next 30 KiB are held
        // again and flushed when the pass ends.
        XCTAssertEqual(recorder.bytesAtFlush, [4 * piece, 7 * piece])
        _ = try channel.finish()
    }

    func testNestedPassesJoinTheOuterOne() throws {
        let deferred = DeferredFlushes()
        let (channel, recorder) = try self.connection(deferred)
        deferred.run {
            deferred.run {
                channel.write(self.frame(1), promise: nil)
                channel.flush()
            }
            XCTAssertEqual(recorder.flushes, 0, "the inner pass must not flush")
        }
        XCTAssertEqual(recorder.flushes, 1)
        _ = try channel.finish()
    }
}
