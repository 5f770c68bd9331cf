import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import XCTest

@testable import SSEGateway

/// The PROXY protocol handler first in a `proxy_protocol` listener's pipeline (as
/// `DownstreamPipeline.configure` builds it) on an embedded channel: the header, split anywhere, then a
/// request in the same bytes; the stream's client address is the header's source; a connection without a
/// valid header, or too slow to send one, is closed and counted.
final class ProxyProtocolHandlerTests: XCTestCase {
    private var gateway: EmbeddedGateway!
    private var server: EmbeddedChannel!

    private static let v1 = "PROXY TCP4 198.51.100.20 10.0.0.1 40000 8080\r\n"
    private static let request = "GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n"
    /// `send-proxy-v2` for 2001:db8::20 with an ALPN TLV.
    private static let v2: [UInt8] =
        [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x21, 0x00, 36 + 5]
        + [0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [0x20]
        + [0xFD] + Array(repeating: 0, count: 14) + [1] + [0x9C, 0x40, 0x1F, 0x90] + [0x01, 0x00, 0x02, 0x68, 0x32]

    override func setUpWithError() throws {
        self.gateway = EmbeddedGateway(feeds: [try EmbeddedGateway.feed("/prices")])
        self.server = try self.connection()
    }

    override func tearDownWithError() throws {
        _ = try? self.server.finish()
        self.server = nil
        self.gateway = nil
    }

    private func connection() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: self.gateway.loop)
        try DownstreamPipeline.configure(
            channel: channel,
            tls: nil,
            resets: ListenerResetBudget(),
            context: self.gateway.context,
            limits: self.gateway.context.limits,
            proxyProtocol: true
        )
        try channel.connect(to: SocketAddress(ipAddress: "10.0.0.1", port: 4000)).wait()
        return channel
    }

    private func output(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    private func write(_ bytes: [UInt8], to channel: EmbeddedChannel) throws {
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        self.gateway.loop.run()
    }

    func testAV1HeaderThenARequestInTheSameBytesStreamsAsTheHeadersSource() throws {
        try self.write(Array((Self.v1 + Self.request).utf8), to: self.server)
        XCTAssertTrue(try self.output(self.server).hasPrefix("HTTP/1.1 200 OK\r\n"))
        XCTAssertEqual(self.gateway.context.streams(of: "198.51.100.20"), 1)
        XCTAssertEqual(self.gateway.context.streams(of: "10.0.0.1"), 0)
        XCTAssertThrowsError(try self.server.pipeline.syncOperations.handler(type: ProxyProtocolHandler.self))
    }

    func testAV2HeaderSplitAtEveryByteThenARequest() throws {
        let bytes = Self.v2 + Array(Self.request.utf8)
        for split in [1, 5, 12, 15, 16, 40, Self.v2.count - 1, Self.v2.count, Self.v2.count + 3] {
            let channel = try self.connection()
            try self.write(Array(bytes[..<split]), to: channel)
            XCTAssertTrue(channel.isActive, "split at \(split)")
            try self.write(Array(bytes[split...]), to: channel)
            XCTAssertTrue(try self.output(channel).hasPrefix("HTTP/1.1 200 OK\r\n"), "split at \(split)")
            XCTAssertEqual(self.gateway.context.streams(of: "2001:db8::20"), 1, "split at \(split)")
            _ = try channel.finish()
            self.gateway.loop.run()
        }
        // One byte at a time.
        let channel = try self.connection()
        for byte in bytes { try self.write([byte], to: channel) }
        XCTAssertTrue(try self.output(channel).hasPrefix("HTTP/1.1 200 OK\r\n"))
        XCTAssertEqual(self.gateway.context.streams(of: "2001:db8::20"), 1)
    }

    /// h2c after the header: every stream of the connection has the header's source.
    func testAnH2CConnectionAfterTheHeaderHasItsStreamsAtTheHeadersSource() throws {
        try self.write(Array(Self.v1.utf8), to: self.server)
        let client = EmbeddedChannel(loop: self.gateway.loop)
        let multiplexer = try client.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .client,
            connectionConfiguration: .init(),
            streamConfiguration: .init()
        ) { $0.eventLoop.makeSucceededVoidFuture() }
        try client.connect(to: SocketAddress(ipAddress: "10.0.0.1", port: 8000)).wait()
        for _ in 0..<2 {
            let stream = multiplexer.createStreamChannel { $0.eventLoop.makeSucceededVoidFuture() }
            self.gateway.loop.run()
            let request = HPACKHeaders([
                (":method", "GET"), (":scheme", "http"), (":path", "/prices"), (":authority", "gw"),
            ])
            try stream.wait().writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: request, endStream: true)))
                .whenFailure { XCTFail("request not sent: \($0)") }
        }
        var rounds = 0
        var moved = true
        while moved, rounds < 100 {
            moved = false
            rounds += 1
            while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                try self.server.writeInbound(bytes)
                moved = true
            }
            while let bytes = try self.server.readOutbound(as: ByteBuffer.self) {
                try client.writeInbound(bytes)
                moved = true
            }
            self.gateway.loop.run()
        }
        XCTAssertNoThrow(try self.server.pipeline.syncOperations.handler(type: HTTP2ConnectionGuard.self))
        XCTAssertEqual(self.gateway.context.streams(of: "198.51.100.20"), 2)
        XCTAssertEqual(self.gateway.context.streams(of: "10.0.0.1"), 0)
        _ = try? client.finish()
    }

    func testALocalHeaderKeepsThePeersAddress() throws {
        let local: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0, 0]
        try self.write(local + Array(Self.request.utf8), to: self.server)
        XCTAssertTrue(try self.output(self.server).hasPrefix("HTTP/1.1 200 OK\r\n"))
        XCTAssertEqual(self.gateway.context.streams(of: "10.0.0.1"), 1)
    }

    func testARequestWithoutAHeaderIsClosedAndCounted() throws {
        try self.write(Array(Self.request.utf8), to: self.server)
        XCTAssertFalse(self.server.isActive)
        XCTAssertEqual(try self.output(self.server), "", "nothing is answered")
        XCTAssertEqual(self.gateway.context.proxyRejections.count(.invalid), 1)
        // An HTTP/2 preface and a TLS ClientHello are no header either.
        for bytes in [Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8), [0x16, 0x03, 0x01, 0x00, 0xA5]] {
            let channel = try self.connection()
            try self.write(bytes, to: channel)
            XCTAssertFalse(channel.isActive)
        }
        XCTAssertEqual(self.gateway.context.proxyRejections.count(.invalid), 3)
    }

    func testAnIncompleteHeaderIsClosedAfterTheHeaderTimeout() throws {
        try self.write(Array(Self.v1.utf8.prefix(20)), to: self.server)
        self.gateway.loop.advanceTime(by: self.gateway.context.limits.headerTimeout - .milliseconds(1))
        XCTAssertTrue(self.server.isActive)
        self.gateway.loop.advanceTime(by: .milliseconds(1))
        XCTAssertFalse(self.server.isActive)
        XCTAssertEqual(self.gateway.context.proxyRejections.count(.timeout), 1)
    }

    func testALongerV2HeaderThanMaxHeaderBytesIsRefusedAtItsLength() throws {
        let declared = self.gateway.context.limits.maxHeaderBytes  // 16 + this is over the limit
        let head: [UInt8] =
            [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11]
            + [UInt8(declared >> 8), UInt8(declared & 0xFF)]
        try self.write(head, to: self.server)
        XCTAssertFalse(self.server.isActive)
    }

    /// The rejection log line is rate-limited: one per interval, with the count since the last.
    func testRejectionsAreLoggedOncePerInterval() {
        let recorder = LogRecorder()
        let rejections = ProxyProtocolRejections()
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        for offset in 0..<100 {
            rejections.record(
                .invalid,
                detail: "not a PROXY protocol header",
                peer: "203.0.113.1",
                logger: recorder.logger(),
                now: start + .milliseconds(Int64(offset))
            )
        }
        rejections.record(.timeout, detail: "slow", peer: nil, logger: recorder.logger(), now: start + .seconds(11))
        XCTAssertEqual(rejections.count(.invalid), 100)
        XCTAssertEqual(rejections.count(.timeout), 1)
        let lines = recorder.recorded.filter { $0.message.contains("PROXY protocol") }
        XCTAssertEqual(lines.count, 2, "\(lines.map(\.metadata))")
        XCTAssertEqual(lines.last?.metadata["closed_since_last_line"], "100", "the 99 unlogged and this one")
    }
}
