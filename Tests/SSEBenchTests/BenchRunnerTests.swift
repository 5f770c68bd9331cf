import CompressNIO
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import XCTest

@testable import SSEBench
@testable import SSEGateTestSupport

/// The load tool's runner against scripted servers on 127.0.0.1 (no gateway): what it counts when a
/// server stays silent, resets streams, is not there, sends gzip members, junk, a page that is no event
/// stream, interim heads, or never finishes a TLS handshake.
final class BenchRunnerTests: XCTestCase {
    private static let rate = 10.0
    private static let clients = 50

    private func options(_ url: String, http2: Bool = false, duration: Double = 1.5) -> BenchOptions {
        var options = BenchOptions(url: url)
        options.clients = Self.clients
        options.duration = duration
        options.expectedRate = Self.rate
        options.http2 = http2
        options.streamsPerConnection = 20  // 50 clients: 3 connections, the last one part-full
        options.headWait = 5
        return options
    }

    /// Runs `body` with a plain TCP listener on 127.0.0.1 (given its port) whose connections get
    /// `initializer`; closes it afterwards, also when `body` throws.
    private func withListener(
        _ initializer: @escaping @Sendable (Channel) -> EventLoopFuture<Void> = {
            $0.eventLoop.makeSucceededVoidFuture()
        },
        _ body: (Int) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try await ServerBootstrap(group: group).childChannelInitializer(initializer).bind(
            host: "127.0.0.1",
            port: 0
        ).get()
        do {
            try await body(listener.localAddress!.port!)
        } catch {
            try? await listener.close()
            try? await group.shutdownGracefully()
            throw error
        }
        try await listener.close()
        try await group.shutdownGracefully()
    }

    /// A server that accepts connections and never answers: every client is connected but has no response.
    func testSilentServerCountsNoResponse() async throws {
        try await self.withListener { port in
            for http2 in [false, true] {
                var options = self.options("http://127.0.0.1:\(port)/feed", http2: http2, duration: 0.2)
                options.clients = 6
                options.headWait = 0.5
                let report = try await BenchRunner.run(options)
                XCTAssertEqual(report.noResponse, 6, "http2: \(http2): \(report.text)")
                XCTAssertEqual(report.connectErrors, 0)
                XCTAssertEqual(report.connected, 0)
                XCTAssertTrue(report.json.contains("\"no_response\":6"), report.json)
            }
        }
    }

    /// An HTTP/2 server that answers each stream with a 200 and one event, then resets it (RST_STREAM, as
    /// the gateway does to a stream it evicts): each is a stream reset and a disconnect.
    func testStreamResetByTheServerIsADisconnect() async throws {
        let http2Server: @Sendable (Channel) -> EventLoopFuture<Void> = { channel in
            channel.eventLoop.makeCompletedFuture {
                _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                    mode: .server,
                    connectionConfiguration: .init(),
                    streamConfiguration: .init()
                ) { stream in
                    stream.eventLoop.makeCompletedFuture {
                        try stream.pipeline.syncOperations.addHandler(AnswerThenReset())
                    }
                }
            }
        }
        try await self.withListener(http2Server) { port in
            var options = self.options("http://127.0.0.1:\(port)/feed", http2: true, duration: 0.6)
            options.clients = 8
            options.streamsPerConnection = 4
            let report = try await BenchRunner.run(options)
            XCTAssertEqual(report.resets, 8, report.text)
            XCTAssertEqual(report.disconnects, 8, report.text)
            XCTAssertEqual(report.connected, 0)
            XCTAssertEqual(report.noResponse, 0)
            XCTAssertTrue(report.json.contains("\"stream_resets\":8"), report.json)
        }
    }

    /// Server side of one HTTP/2 stream: a 200 head and one event, then a reset 200 ms later.
    private final class AnswerThenReset: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .headers = self.unwrapInboundIn(data) else { return }
            let head = HPACKHeaders([(":status", "200"), ("content-type", "text/event-stream")])
            context.write(self.wrapOutboundOut(.headers(.init(headers: head))), promise: nil)
            let event = ByteBuffer(string: "data: {\"seq\":1,\"ts\":1}\n\n")
            context.writeAndFlush(self.wrapOutboundOut(.data(.init(data: .byteBuffer(event)))), promise: nil)
            let stream = context.channel
            context.eventLoop.scheduleTask(in: .milliseconds(200)) { stream.close(promise: nil) }
        }
    }

    func testClosedPortCountsConnectErrors() async throws {
        let port = try await closedPort()
        for http2 in [false, true] {
            var options = self.options("http://127.0.0.1:\(port)/feed", http2: http2, duration: 0.2)
            options.clients = 5
            let report = try await BenchRunner.run(options)
            XCTAssertEqual(report.connectErrors, 5, report.text)
            XCTAssertEqual(report.connected, 0)
            XCTAssertEqual(report.noResponse, 0)
            XCTAssertNotNil(report.firstConnectError)
        }
    }

    // MARK: servers that answer by a script

    /// `BenchRunner.run`, failing the test (instead of hanging the suite) when the run has not ended
    /// within `seconds`; a run that never ends is left behind.
    private func run(
        _ options: BenchOptions,
        within seconds: Double = 5,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> BenchReport {
        let outcome = NIOLockedValueBox<Result<BenchReport, Error>?>(nil)
        Task {
            do {
                let report = try await BenchRunner.run(options)
                outcome.withLockedValue { $0 = .success(report) }
            } catch {
                outcome.withLockedValue { $0 = .failure(error) }
            }
        }
        let ended = try await poll(
            "the bench run to end",
            timeout: .milliseconds(Int64(seconds * 1000)),
            file: file,
            line: line,
            read: { outcome.withLockedValue { $0 } },
            describe: { _ in "it is still running" },
            until: { $0 != nil }
        )
        return try ended!.get()
    }

    /// Runs `body` with an HTTP/1.1 server on 127.0.0.1 (given its port) that answers each connection's
    /// request by calling `script` with the connection.
    private func withScriptedServer(
        _ script: @escaping @Sendable (Channel) -> Void,
        _ body: (Int) async throws -> Void
    ) async throws {
        try await self.withListener(
            { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AnswerByScript(script))
                }
            },
            body
        )
    }

    /// Server side of one HTTP/1.1 connection: the first bytes of the request start the script.
    private final class AnswerByScript: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer

        private let script: @Sendable (Channel) -> Void
        private var answered = false

        init(_ script: @escaping @Sendable (Channel) -> Void) {
            self.script = script
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !self.answered else { return }
            self.answered = true
            self.script(context.channel)
        }
    }

    /// Options for a scripted server: few clients, a head wait that ends as soon as the heads are in, and
    /// a window that the events the scripts send 200 ms after the head fall well inside.
    private func scriptedOptions(_ url: String, clients: Int = 4, gzip: Bool = false) -> BenchOptions {
        var options = BenchOptions(url: url)
        options.clients = clients
        options.gzip = gzip
        options.duration = 0.7
        options.headWait = 2
        return options
    }

    private static let streamHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    private static let gzipStreamHead =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n\r\n"

    /// A gzip body of several members (RFC 1952 §2.2), as a server that compresses each flush on its own
    /// sends: two members in one write, a third later. Every event of every member is counted.
    func testGzipBodyOfConcatenatedMembersCountsEveryEvent() async throws {
        try await self.withScriptedServer(
            { channel in
                channel.writeAndFlush(ByteBuffer(string: Self.gzipStreamHead), promise: nil)
                channel.eventLoop.scheduleTask(in: .milliseconds(200)) {
                    var two = try! BenchTestBodies.gzip(BenchTestBodies.events(1...2))
                    two.writeImmutableBuffer(try! BenchTestBodies.gzip(BenchTestBodies.events(3...4)))
                    channel.writeAndFlush(two, promise: nil)
                }
                channel.eventLoop.scheduleTask(in: .milliseconds(250)) {
                    channel.writeAndFlush(try! BenchTestBodies.gzip(BenchTestBodies.events(5...6)), promise: nil)
                }
            },
            { port in
                let report = try await self.run(self.scriptedOptions("http://127.0.0.1:\(port)/feed", gzip: true))
                XCTAssertEqual(report.connected, 4, report.text)
                XCTAssertEqual(report.deliveries, 4 * 6, report.text)
                XCTAssertEqual(report.missing, 0, report.text)
                XCTAssertEqual(report.protocolErrors, 0, report.text)
            }
        )
    }

    /// One write of a sync-flushed gzip stream that inflates to far more than the 64 KiB scratch buffer,
    /// then silence: every event is counted from that one piece (none waits for the next piece).
    func testGzipPieceInflatingPastTheScratchBufferCountsEveryEvent() async throws {
        let count = 3000
        try await self.withScriptedServer(
            { channel in
                channel.writeAndFlush(ByteBuffer(string: Self.gzipStreamHead), promise: nil)
                channel.eventLoop.scheduleTask(in: .milliseconds(200)) {
                    let compressor = try! ZlibCompressor(algorithm: .gzip)
                    var input = ByteBuffer(string: BenchTestBodies.events(1...count, padding: 200))
                    var output = ByteBufferAllocator().buffer(capacity: compressor.maxSize(from: input) + 64)
                    try! compressor.deflate(from: &input, to: &output, flush: .sync)
                    channel.writeAndFlush(output, promise: nil)
                }
            },
            { port in
                let report = try await self.run(self.scriptedOptions("http://127.0.0.1:\(port)/feed", gzip: true))
                XCTAssertEqual(report.connected, 4, report.text)
                XCTAssertEqual(report.deliveries, 4 * count, report.text)
                XCTAssertEqual(report.protocolErrors, 0, report.text)
            }
        )
    }

    /// The same at the receiver, with a small scratch buffer and many sizes: whatever the alignment of the
    /// Bytes after a gzip member that start no member are malformed gzip: a protocol error, that client
    /// closed, and the run ends (the events of the member before are counted).
    func testJunkAfterAGzipMemberIsAProtocolError() async throws {
        try await self.withScriptedServer(
            { channel in
                channel.writeAndFlush(ByteBuffer(string: Self.gzipStreamHead), promise: nil)
                channel.eventLoop.scheduleTask(in: .milliseconds(200)) {
                    var body = try! BenchTestBodies.gzip(BenchTestBodies.events(1...2))
                    body.writeString("junk after the member")
                    channel.writeAndFlush(body, promise: nil)
                }
            },
            { port in
                let report = try await self.run(self.scriptedOptions("http://127.0.0.1:\(port)/feed", gzip: true))
                XCTAssertEqual(report.protocolErrors, 4, report.text)
                XCTAssertEqual(report.deliveries, 4 * 2, report.text)
                XCTAssertEqual(report.connected, 0, report.text)
            }
        )
    }

    /// A 200 page that is no event stream (no blank line, read until close) is dropped once 1 MiB of it
    /// is held: a protocol error, not a client that buffers the page.
    func testBodyWithoutEventEndsIsAProtocolErrorAfter1MiB() async throws {
        try await self.withScriptedServer(
            { channel in
                let line = "<p>a page, not an event stream</p>\n"
                let page = String(repeating: line, count: SSEEventScanner.maximumTail / line.utf8.count + 100)
                channel.writeAndFlush(
                    ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>\n" + page),
                    promise: nil
                )
            },
            { port in
                let report = try await self.run(self.scriptedOptions("http://127.0.0.1:\(port)/", clients: 2))
                XCTAssertEqual(report.protocolErrors, 2, report.text)
                XCTAssertEqual(report.connected, 0, report.text)
            }
        )
    }

    /// An interim `103 Early Hints` head, alone or in one write with the final head, is skipped: the 200
    /// after it streams. `101 Switching Protocols` is a final head, and not a 200.
    func testInterimHeadsAreSkippedAnd101IsNon200() async throws {
        let hints = "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        for together in [false, true] {
            try await self.withScriptedServer(
                { channel in
                    if together {
                        channel.writeAndFlush(ByteBuffer(string: hints + Self.streamHead), promise: nil)
                    } else {
                        channel.writeAndFlush(ByteBuffer(string: hints), promise: nil)
                        channel.eventLoop.scheduleTask(in: .milliseconds(20)) {
                            channel.writeAndFlush(ByteBuffer(string: Self.streamHead), promise: nil)
                        }
                    }
                    channel.eventLoop.scheduleTask(in: .milliseconds(200)) {
                        channel.writeAndFlush(ByteBuffer(string: BenchTestBodies.events(1...3)), promise: nil)
                    }
                },
                { port in
                    let report = try await self.run(self.scriptedOptions("http://127.0.0.1:\(port)/feed"))
                    XCTAssertEqual(report.connected, 4, "together: \(together): \(report.text)")
                    XCTAssertEqual(report.badStatus, 0, "together: \(together)")
                    XCTAssertEqual(report.deliveries, 4 * 3, "together: \(together): \(report.text)")
                }
            )
        }
        try await self.withScriptedServer(
            { channel in
                channel.writeAndFlush(
                    ByteBuffer(
                        string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                    ),
                    promise: nil
                )
            },
            { port in
                let report = try await self.run(self.scriptedOptions("http://127.0.0.1:\(port)/feed"))
                XCTAssertEqual(report.badStatus, 4, report.text)
                XCTAssertEqual(report.connected, 0, report.text)
            }
        )
    }

    /// An https server that accepts TCP and never answers the TLS handshake: each connection fails after
    /// the connect timeout as a connect error, and the run ends.
    func testTLSHandshakeThatNeverCompletesTimesOutAsAConnectError() async throws {
        try await self.withListener { port in
            for http2 in [false, true] {
                var options = self.scriptedOptions("https://127.0.0.1:\(port)/feed", clients: 3)
                options.http2 = http2
                options.streamsPerConnection = 1
                options.duration = 0.2
                options.connectTimeout = 0.5
                let started = Date()
                let report = try await self.run(options)
                XCTAssertEqual(report.connectErrors, 3, "http2: \(http2): \(report.text)")
                XCTAssertEqual(report.connected, 0)
                XCTAssertEqual(report.noResponse, 0)
                XCTAssertTrue(report.firstConnectError?.contains("TLS handshake timeout") == true, report.text)
                XCTAssertLessThan(Date().timeIntervalSince(started), 4, "the handshake deadline is the connect timeout")
            }
        }
    }
}
