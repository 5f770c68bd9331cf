import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import SSE
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
            feeds: [
                try EmbeddedGateway.feed("/prices") { $0.settings.retry = .milliseconds(2000) },
                // Below what one pass of `testAPassOverTheHighWatermark…` writes past a stream's watermark.
                try EmbeddedGateway.feed("/big") { $0.settings.client.maxQueue = 48 * 1024 },
            ]
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
        /// The DATA frames' bytes, as text.
        var dataText: String {
            self.frames.compactMap { frame -> String? in
                guard case .data(let data) = frame, case .byteBuffer(let buffer) = data.data else { return nil }
                return String(buffer: buffer)
            }.joined()
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
        let recorder = try self.openStreams(1, on: client)[0]
        XCTAssertNoThrow(try self.server.pipeline.syncOperations.handler(type: HTTP2ConnectionGuard.self))
        XCTAssertEqual(self.gateway.clients("/prices"), 1)

        guard case .headers(let head) = recorder.frames.first else {
            return XCTFail("no response HEADERS: \(recorder.frames)")
        }
        XCTAssertEqual(head.headers.first(name: ":status"), "200")
        XCTAssertEqual(head.headers.first(name: "content-type"), "text/event-stream; charset=utf-8")

        self.gateway.publish("/prices", ids: 1...2)
        try self.interact(client)
        let body = recorder.dataText
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

    /// Counts what the HTTP/2 handler hands down to the connection: flushes, and DATA frame headers.
    private final class BelowHTTP2Handler: ChannelOutboundHandler {
        typealias OutboundIn = IOData
        var flushes = 0
        func flush(context: ChannelHandlerContext) {
            self.flushes += 1
            context.flush()
        }
    }

    /// Opens `count` client streams on one h2c connection, each a GET of /prices, recording their frames.
    private func openStreams(
        _ count: Int,
        on client: EmbeddedChannel,
        path: String = "/prices"
    ) throws
        -> [StreamRecorder]
    {
        let multiplexer = try client.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .client,
            connectionConfiguration: .init(),
            streamConfiguration: .init()
        ) { $0.eventLoop.makeSucceededVoidFuture() }
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8000)).wait()
        var recorders: [StreamRecorder] = []
        for _ in 0..<count {
            let recorder = StreamRecorder()
            recorders.append(recorder)
            let bound = NIOLoopBound(recorder, eventLoop: self.gateway.loop)
            let stream = multiplexer.createStreamChannel { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bound.value) }
            }
            self.gateway.loop.run()
            let request = HPACKHeaders([
                (":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "gw"),
            ])
            try stream.wait().writeAndFlush(
                HTTP2Frame.FramePayload.headers(.init(headers: request, endStream: true))
            ).whenFailure { XCTFail("request not sent: \($0)") }
            try self.interact(client)
        }
        return recorders
    }

    /// The streams of a connection write their DATA straight into its HTTP/2 handler (`HTTP2DataWriter`),
    /// which flushes once per fan-out pass for all of them, not once per stream; every stream still gets
    /// every event, in order.
    func testAPassFlushesTheHTTP2HandlerOncePerConnectionWhateverItsStreams() throws {
        let client = EmbeddedChannel(loop: self.gateway.loop)
        let recorders = try self.openStreams(4, on: client)
        XCTAssertEqual(self.gateway.clients("/prices"), 4)
        let below = BelowHTTP2Handler()
        let sync = self.server.pipeline.syncOperations
        try sync.addHandler(below, position: .before(try sync.handler(type: NIOHTTP2Handler.self)))

        self.gateway.publish("/prices", ids: 1...1)
        XCTAssertEqual(below.flushes, 1, "one flush for the pass, not one per stream")
        self.gateway.publish("/prices", ids: 2...3)
        XCTAssertEqual(below.flushes, 2)
        try self.interact(client)
        for recorder in recorders {
            let body = recorder.dataText
            XCTAssertEqual(
                body,
                "retry: 2000\n\nid: 1\ndata: event 1\n\nid: 2\ndata: event 2\n\nid: 3\ndata: event 3\n\n"
            )
        }
        _ = try? client.finish()
    }

    /// Publishes on `/big` one batch of twelve 20,000-byte events: 240 KB for each stream in one pass, far
    /// past the client's 65,535-byte initial windows and the 64 KiB a stream may hold.
    private func publishBigBatch(firstID: Int, count: Int = 12) {
        let payload = String(repeating: "x", count: 20_000)
        self.gateway.publish(
            "/big",
            (firstID..<firstID + count).map { ServerSentEvent(id: String($0), type: nil, data: payload) }
        )
    }

    /// A pass that writes more than a stream's high watermark goes out whole to a client that reads after
    /// it: nothing reaches the socket until the pass ends, so what the pass wrote counts against the stream
    /// only once the pass's flushes have gone through (`HTTP2StreamHandler.checkHeld`). Had the stream
    /// turned unwritable inside the pass, once its window shut (after 65,535 bytes) and 64 KiB more were
    /// held, the rest of the batch (100 KB) would have been queued over the feed's 48 KiB `max_queue` and
    /// the client evicted.
    func testAPassOverTheHighWatermarkReachesAClientThatReadsAfterIt() throws {
        let client = EmbeddedChannel(loop: self.gateway.loop)
        let recorders = try self.openStreams(1, on: client, path: "/big")
        self.publishBigBatch(firstID: 1)
        XCTAssertEqual(self.gateway.clients("/big"), 1, "not evicted by its own pass")
        try self.interact(client)
        XCTAssertEqual(self.gateway.clients("/big"), 1)
        let body = recorders[0].dataText
        XCTAssertEqual(body.components(separatedBy: "id: ").count - 1, 12, "every event of the pass arrived")
        XCTAssertTrue(body.hasSuffix("id: 12\ndata: \(String(repeating: "x", count: 20_000))\n\n"))
        _ = try? client.finish()
    }

    /// The other side of it: what the client's window held back after the pass (about 175 KB) makes the stream
    /// unwritable, so a client that still has not read gets the next batch queued, over `max_queue`, and is
    /// evicted; the connection stays.
    func testAStreamStillHoldingPastItsWatermarkAfterThePassQueuesAndIsEvicted() throws {
        let client = EmbeddedChannel(loop: self.gateway.loop)
        _ = try self.openStreams(1, on: client, path: "/big")
        self.publishBigBatch(firstID: 1)
        XCTAssertEqual(self.gateway.clients("/big"), 1)
        self.publishBigBatch(firstID: 13, count: 3)
        XCTAssertEqual(self.gateway.clients("/big"), 0, "evicted: 60 KB queued over a 48 KiB max_queue")
        XCTAssertTrue(self.server.isActive, "only the stream is reset")
        _ = try? client.finish()
    }
}
