import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import XCTest

@testable import SSEGateway

/// A whole cleartext client connection as `DownstreamPipeline.configure` builds it (`ProtocolDetector`,
/// then the HTTP/1 or the HTTP/2 pipeline) on embedded channels: HTTP/1 bytes in and out, and an h2c
/// connection against SwiftNIO's HTTP/2 client, the bytes moved between the two channels in memory.
final class DownstreamPipelineTests: XCTestCase {
    private var gateway: EmbeddedGateway!
    private var server: EmbeddedChannel!

    override func setUpWithError() throws {
        self.gateway = EmbeddedGateway(
            feeds: [try EmbeddedGateway.feed("/prices") { $0.settings.retry = .milliseconds(2000) }]
        )
        self.server = EmbeddedChannel(loop: self.gateway.loop)
        try DownstreamPipeline.configure(
            channel: self.server,
            tls: nil,
            resets: ListenerResetBudget(),
            context: self.gateway.context,
            limits: self.gateway.context.limits
        )
        try self.server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
    }

    override func tearDownWithError() throws {
        _ = try? self.server.finish()
        self.server = nil
        self.gateway = nil
    }

    private func serverOutput() throws -> String {
        var text = ""
        while let buffer = try self.server.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    func testAnHTTP1RequestGetsTheHTTP1PipelineAndTheDetectorLeaves() throws {
        try self.server.writeInbound(ByteBuffer(string: "GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n"))
        self.gateway.loop.run()
        let response = try self.serverOutput()
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK\r\n"), response)
        XCTAssertTrue(response.hasSuffix("\r\n\r\nd\r\nretry: 2000\n\n\r\n"), response)
        XCTAssertThrowsError(try self.server.pipeline.syncOperations.handler(type: ProtocolDetector.self))
        XCTAssertNoThrow(try self.server.pipeline.syncOperations.handler(type: HTTP1StreamHandler.self))
    }

    /// A configurator that throws closes the connection.
    func testADetectorWhoseConfiguratorFailsClosesTheConnection() throws {
        struct Refused: Error {}
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            ProtocolDetector(timeout: .seconds(5), http1: { _ in throw Refused() }, http2: { _ in throw Refused() })
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n"))
        XCTAssertFalse(channel.isActive)
        XCTAssertNil(try channel.readInbound(as: ByteBuffer.self), "nothing is passed on")
    }

    // MARK: h2c

    /// Records the frames of one client stream.
    private final class StreamRecorder: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        var frames: [HTTP2Frame.FramePayload] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.frames.append(self.unwrapInboundIn(data))
        }
    }

    /// Moves bytes between the client and the server channel until neither has anything to send.
    private func interact(_ client: EmbeddedChannel) throws {
        var moved = true
        var rounds = 0
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
    }

    /// A GET over h2c with prior knowledge: the event-stream HEADERS and the prelude, then each event as
    /// DATA, on the client's stream.
    func testAnH2CStreamGetsEventStreamHeadersAndEventsAsData() throws {
        let client = EmbeddedChannel(loop: self.gateway.loop)
        let multiplexer = try client.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .client,
            connectionConfiguration: .init(),
            streamConfiguration: .init()
        ) { $0.eventLoop.makeSucceededVoidFuture() }
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8000)).wait()
        let recorder = StreamRecorder()
        let bound = NIOLoopBound(recorder, eventLoop: self.gateway.loop)
        let stream = multiplexer.createStreamChannel { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bound.value) }
        }
        self.gateway.loop.run()
        let streamChannel = try stream.wait()
        let request = HPACKHeaders([
            (":method", "GET"), (":scheme", "http"), (":path", "/prices"), (":authority", "gw"),
        ])
        streamChannel.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: request, endStream: true)))
            .whenFailure { XCTFail("request not sent: \($0)") }
        try self.interact(client)
        XCTAssertNoThrow(try self.server.pipeline.syncOperations.handler(type: HTTP2ConnectionGuard.self))
        XCTAssertEqual(self.gateway.clients("/prices"), 1)

        guard case .headers(let head) = recorder.frames.first else {
            return XCTFail("no response HEADERS: \(recorder.frames)")
        }
        XCTAssertEqual(head.headers.first(name: ":status"), "200")
        XCTAssertEqual(head.headers.first(name: "content-type"), "text/event-stream; charset=utf-8")

        self.gateway.publish("/prices", ids: 1...2)
        try self.interact(client)
        let body = recorder.frames.compactMap { frame -> String? in
            guard case .data(let data) = frame, case .byteBuffer(let buffer) = data.data else { return nil }
            return String(buffer: buffer)
        }.joined()
        XCTAssertEqual(body, "retry: 2000\n\nid: 1\ndata: event 1\n\nid: 2\ndata: event 2\n\n")
        _ = try? client.finish()
    }

    /// An h2c connection that opens no stream within `header_timeout` gets GOAWAY (NO_ERROR) and is closed
    /// (`HTTP2ConnectionGuard`).
    func testAnH2CConnectionWithoutAStreamIsClosedAfterTheHeaderTimeout() throws {
        let client = EmbeddedChannel(loop: self.gateway.loop)
        _ = try client.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .client,
            connectionConfiguration: .init(),
            streamConfiguration: .init()
        ) { $0.eventLoop.makeSucceededVoidFuture() }
        final class GoAwayRecorder: ChannelInboundHandler {
            typealias InboundIn = HTTP2Frame
            var goAway: HTTP2ErrorCode?
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                if case .goAway(_, let code, _) = self.unwrapInboundIn(data).payload { self.goAway = code }
            }
        }
        let recorder = GoAwayRecorder()
        try client.pipeline.syncOperations.addHandler(recorder)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8000)).wait()
        try self.interact(client)
        XCTAssertNoThrow(try self.server.pipeline.syncOperations.handler(type: HTTP2ConnectionGuard.self))
        let timeout = self.gateway.context.limits.headerTimeout
        self.gateway.loop.advanceTime(by: timeout - .milliseconds(1))
        try self.interact(client)
        XCTAssertTrue(self.server.isActive)
        self.gateway.loop.advanceTime(by: .milliseconds(2))
        try self.interact(client)
        XCTAssertEqual(recorder.goAway, .noError)
        XCTAssertFalse(self.server.isActive)
        _ = try? client.finish()
    }
}
