import CompressNIO
import Foundation
import NIOCore
import XCTest

@testable import SSEBench

/// `BenchStreamReceiver` without sockets: body pieces in, the loop's tally out.
final class BenchStreamReceiverTests: XCTestCase {

    /// last output with the buffer's end, the events of a piece are all counted from that piece.
    func testReceiverCountsEveryEventOfAGzipPieceWhateverItInflatesTo() throws {
        for count in stride(from: 1, through: 400, by: 3) {
            let loop = BenchLoopTally()
            loop.scratch = ByteBufferAllocator().buffer(capacity: 1024)
            var receiver = BenchStreamReceiver(loop: loop)
            receiver.requestSent()
            XCTAssertTrue(receiver.head(status: 200, gzip: true))
            let compressor = try ZlibCompressor(algorithm: .gzip)
            var input = ByteBuffer(string: BenchTestBodies.events(1...count, padding: count % 97))
            var piece = ByteBufferAllocator().buffer(capacity: compressor.maxSize(from: input) + 64)
            try compressor.deflate(from: &input, to: &piece, flush: .sync)
            try receiver.body(piece)
            XCTAssertEqual(loop.tally.events, count, "\(count) events in one piece")
        }
    }

    // MARK: The tally through a client's life

    /// A 200 stream: waiting for its head, then connected, its bytes and events counted, then one
    /// disconnect (and a reset, when the server reset the HTTP/2 stream).
    func testAStreamMovesFromAwaitingHeadToConnectedToDisconnected() throws {
        for reset in [false, true] {
            let loop = BenchLoopTally()
            var receiver = BenchStreamReceiver(loop: loop)
            receiver.requestSent()
            receiver.requestSent()
            XCTAssertEqual(loop.tally.awaitingHead, 1, "one request per client")
            XCTAssertEqual(loop.tally.noResponse, 1)
            XCTAssertTrue(receiver.head(status: 200, gzip: false))
            XCTAssertTrue(receiver.isStreaming)
            XCTAssertEqual(loop.tally.awaitingHead, 0)
            XCTAssertEqual(loop.tally.connected, 1)
            let body = ByteBuffer(string: BenchTestBodies.events(1...3))
            try receiver.body(body)
            XCTAssertEqual(loop.tally.events, 3)
            XCTAssertEqual(loop.tally.bytes, body.readableBytes)
            XCTAssertEqual(loop.tally.missing, 0)
            XCTAssertEqual(Int(loop.tally.latencyMicros.totalCount), 3, "one latency sample per event")
            receiver.closed(reset: reset)
            receiver.closed(reset: reset)
            XCTAssertEqual(loop.tally.connected, 0)
            XCTAssertEqual(loop.tally.disconnects, 1, "counted once")
            XCTAssertEqual(loop.tally.resets, reset ? 1 : 0)
            try receiver.body(ByteBuffer(string: BenchTestBodies.events(4...4)))
            XCTAssertEqual(loop.tally.events, 3, "nothing counted after the close")
        }
    }

    /// A gap in the sequence numbers counts the events that never arrived.
    func testAGapInSeqCountsTheMissingEvents() throws {
        let loop = BenchLoopTally()
        var receiver = BenchStreamReceiver(loop: loop)
        receiver.requestSent()
        XCTAssertTrue(receiver.head(status: 200, gzip: false))
        try receiver.body(ByteBuffer(string: BenchTestBodies.events(1...2) + BenchTestBodies.events(6...6)))
        XCTAssertEqual(loop.tally.events, 3)
        XCTAssertEqual(loop.tally.missing, 3, "seq 3, 4 and 5")
    }

    func testANon200HeadIsABadStatusAndEndsTheClient() throws {
        let loop = BenchLoopTally()
        var receiver = BenchStreamReceiver(loop: loop)
        receiver.requestSent()
        XCTAssertFalse(receiver.head(status: 503, gzip: false))
        XCTAssertEqual(loop.tally.badStatus, 1)
        XCTAssertEqual(loop.tally.awaitingHead, 0)
        XCTAssertEqual(loop.tally.connected, 0)
        receiver.closed()
        XCTAssertEqual(loop.tally.disconnects, 0, "a client that never streamed is no disconnect")
        XCTAssertEqual(loop.tally.closedBeforeHead, 0)
    }

    func testACloseBeforeTheHeadIsNoResponse() {
        let loop = BenchLoopTally()
        var receiver = BenchStreamReceiver(loop: loop)
        receiver.requestSent()
        receiver.closed()
        XCTAssertEqual(loop.tally.awaitingHead, 0)
        XCTAssertEqual(loop.tally.closedBeforeHead, 1)
        XCTAssertEqual(loop.tally.noResponse, 1)
        XCTAssertEqual(loop.tally.disconnects, 0)
    }

    /// Malformed input is one protocol error, before the head or while streaming (then also a disconnect).
    func testMalformedInputIsOneProtocolError() {
        let waiting = BenchLoopTally()
        var early = BenchStreamReceiver(loop: waiting)
        early.requestSent()
        early.malformed()
        early.malformed()
        XCTAssertEqual(waiting.tally.protocolErrors, 1)
        XCTAssertEqual(waiting.tally.awaitingHead, 0)

        let streaming = BenchLoopTally()
        var late = BenchStreamReceiver(loop: streaming)
        late.requestSent()
        XCTAssertTrue(late.head(status: 200, gzip: false))
        late.malformed()
        XCTAssertEqual(streaming.tally.protocolErrors, 1)
        XCTAssertEqual(streaming.tally.disconnects, 1)
        XCTAssertEqual(streaming.tally.connected, 0)
    }

    /// Corrupt gzip in a body throws (the caller counts it as malformed).
    func testCorruptGzipThrows() {
        let loop = BenchLoopTally()
        var receiver = BenchStreamReceiver(loop: loop)
        receiver.requestSent()
        XCTAssertTrue(receiver.head(status: 200, gzip: true))
        XCTAssertThrowsError(try receiver.body(ByteBuffer(string: "not gzip at all, not even a header")))
    }

    /// The loops' tallies add up field by field, histograms merged.
    func testTalliesAddUp() {
        var total = BenchTally()
        var one = BenchTally()
        one.connected = 2
        one.events = 10
        one.missing = 1
        one.awaitingHead = 1
        one.latencyMicros.record(100)
        var two = BenchTally()
        two.connected = 3
        two.events = 5
        two.closedBeforeHead = 2
        two.resets = 1
        two.latencyMicros.record(200)
        total.add(one)
        total.add(two)
        XCTAssertEqual(total.connected, 5)
        XCTAssertEqual(total.events, 15)
        XCTAssertEqual(total.missing, 1)
        XCTAssertEqual(total.noResponse, 3)
        XCTAssertEqual(total.resets, 1)
        XCTAssertEqual(total.latencyMicros.totalCount, 2)
    }
}
