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

}
