import NIOCore
import NIOEmbedded
import XCTest

@testable import SSEGateway

/// The first handlers of a client connection on an embedded channel, without sockets: `ProtocolDetector`
/// (h2c preface or HTTP/1, split anywhere) and `HeadSizeLimiter` (431 past the limit, head bytes only).
final class FrontHandlerTests: XCTestCase {
    /// Collects what a handler passes on.
    private final class Sink: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var received = ByteBuffer()
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = self.unwrapInboundIn(data)
            self.received.writeBuffer(&buffer)
        }
    }

    private static let preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    // MARK: ProtocolDetector

    /// Feeds `input` in pieces split at `cuts` and returns which protocol was chosen and what reached the
    /// handler after the detector (every byte, in order).
    private func detect(
        _ input: String,
        cuts: [Int]
    ) throws -> (protocol: String?, passedOn: String, detectorLeft: Bool) {
        let channel = EmbeddedChannel()
        var chosen: String?
        let sink = Sink()
        let detector = ProtocolDetector(
            timeout: .seconds(5),
            http1: { channel in
                chosen = "http1"
                try channel.pipeline.syncOperations.addHandler(sink)
            },
            http2: { channel in
                chosen = "http2"
                try channel.pipeline.syncOperations.addHandler(sink)
            }
        )
        try channel.pipeline.syncOperations.addHandler(detector)
        let bytes = Array(input.utf8)
        var start = 0
        for cut in cuts + [bytes.count] where cut > start {
            try channel.writeInbound(ByteBuffer(bytes: bytes[start..<cut]))
            start = cut
        }
        let left = (try? channel.pipeline.syncOperations.context(handler: detector)) == nil
        _ = try? channel.finish()
        return (chosen, String(buffer: sink.received), left)
    }

    func testThePrefaceSplitAnywhereChoosesHTTP2AndPassesEveryByteOn() throws {
        let input = Self.preface + "\u{0}\u{0}\u{0}\u{4}"  // the start of the client's SETTINGS frame
        for cut in 0...input.utf8.count {
            let result = try self.detect(input, cuts: [cut])
            XCTAssertEqual(result.protocol, "http2", "split at \(cut)")
            XCTAssertEqual(result.passedOn, input, "split at \(cut)")
            XCTAssertTrue(result.detectorLeft, "the detector removes itself")
        }
        let byteByByte = try self.detect(input, cuts: Array(1..<input.utf8.count))
        XCTAssertEqual(byteByByte.protocol, "http2")
        XCTAssertEqual(byteByByte.passedOn, input)
    }

    func testAnythingElseIsHTTP1AsSoonAsItDiffersFromThePreface() throws {
        for input in ["GET / HTTP/1.1\r\nHost: a\r\n\r\n", "PRI * HTTP/1.1\r\n\r\n", "P", "\r\n"] {
            let result = try self.detect(input, cuts: [])
            let differs = !Self.preface.hasPrefix(input)
            XCTAssertEqual(result.protocol, differs ? "http1" : nil, input.debugDescription)
            XCTAssertEqual(result.passedOn, differs ? input : "", input.debugDescription)
        }
        // Byte by byte: undecided while it could still be the preface, then HTTP/1 with every byte.
        let lookalike = "PRI * HTTP/2.0\r\n\r\nXX"
        let result = try self.detect(lookalike, cuts: Array(1..<lookalike.utf8.count))
        XCTAssertEqual(result.protocol, "http1")
        XCTAssertEqual(result.passedOn, lookalike)
    }

    func testASilentConnectionIsClosedAfterTheTimeout() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            ProtocolDetector(timeout: .milliseconds(100), http1: { _ in }, http2: { _ in })
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(99))
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        XCTAssertFalse(channel.isActive, "closed at the timeout")
    }

    // MARK: HeadSizeLimiter

    private func limiter(_ limit: Int) throws -> (EmbeddedChannel, HeadSizeLimiter, Sink) {
        let channel = EmbeddedChannel()
        let limiter = HeadSizeLimiter(limit: limit)
        let sink = Sink()
        try channel.pipeline.syncOperations.addHandler(limiter)
        try channel.pipeline.syncOperations.addHandler(sink)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, limiter, sink)
    }

    func testAHeadOverTheLimitGets431AndTheConnectionCloses() throws {
        let (channel, _, sink) = try self.limiter(64)
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n"))
        try channel.writeInbound(ByteBuffer(string: "X-Long: \(String(repeating: "y", count: 60))\r\n\r\n"))
        let response = try XCTUnwrap(channel.readOutbound(as: ByteBuffer.self))
        XCTAssertTrue(String(buffer: response).hasPrefix("HTTP/1.1 431 "), String(buffer: response))
        XCTAssertFalse(channel.isActive, "closed after the 431")
        XCTAssertEqual(
            String(buffer: sink.received),
            "GET / HTTP/1.1\r\nHost: a\r\n",
            "the bytes past the limit are not passed on"
        )
    }

    func testAHeadUpToTheLimitPassesAndItsBodyAndTheNextRequestDoNotCount() throws {
        let head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        // Blank lines before a request line count as head bytes but do not end it; a body after it does not count.
        let (channel, limiter, sink) = try self.limiter(head.utf8.count + 2)
        let body = String(repeating: "b", count: 500)
        try channel.writeInbound(ByteBuffer(string: "\r\n" + head + body))
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self))
        XCTAssertTrue(channel.isActive)
        XCTAssertEqual(String(buffer: sink.received), "\r\n" + head + body)
        // The handler waits for the next head: counting starts over from zero.
        limiter.expectHead()
        try channel.writeInbound(ByteBuffer(string: head))
        XCTAssertTrue(channel.isActive)
        limiter.expectHead()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\nX-1: 1\r\n\r\n"))
        XCTAssertFalse(channel.isActive, "a head one line over the limit is cut off")
    }
}
