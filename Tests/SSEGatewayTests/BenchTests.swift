import CompressNIO
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import XCTest

@testable import SSEBench
@testable import SSEGateway

/// The load tool's library (`ssegate bench` without the binary) against an in-process origin and gateway:
/// HTTP/1.1, h2c and TLS (HTTP/1.1 and h2) with a test CA; every client connected and counted, deliveries
/// as the origin's rate predicts, no gaps, a latency sample per delivery. Plus what it counts when things
/// go wrong: non-200 answers, a closed port, an untrusted certificate, a server that will not speak h2,
/// and a gateway that goes away.
final class BenchTests: XCTestCase {
    private static let rate = 10.0
    private static let clients = 50

    /// Runs `body` with an origin ticking at `rate` and a gateway feed `/feed` in front of it (plus a TLS
    /// listener with `certificates`, if given); stops both afterwards, also when `body` throws.
    private func withGateway(
        tls certificates: TestCertificates? = nil,
        configure: @escaping (inout GatewayConfig) -> Void = { _ in },
        _ body: (Harness) async throws -> Void
    ) async throws {
        var origin = OriginServer.Options()
        origin.rate = Self.rate
        origin.payload = 64
        let harness = try await Harness.start(
            origin: origin,
            configure: { config in
                if let certificates { config.listen.append(TLSTestConfig.listener(certificates)) }
                configure(&config)
            },
            feeds: { origin in [try Harness.feed("/feed", upstream: "\(origin)/feed")] }
        )
        do {
            try await eventually("upstream connected") { harness.origin.openConnections == 1 }
            try await body(harness)
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }

    /// Runs `body` with a bare origin (no gateway); stops it afterwards, also when `body` throws.
    private func withOrigin(_ options: OriginServer.Options, _ body: (OriginServer) async throws -> Void) async throws {
        let server = OriginServer(options: options)
        try await server.start()
        do {
            try await body(server)
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }

    private func feedClients(_ harness: Harness) async throws -> Int {
        try await harness.metrics().clientsPerFeed["/feed"] ?? 0
    }

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

    /// Every client streamed the whole window without a gap, and deliveries match the origin's rate.
    /// `gzip`: the body bytes counted are the compressed ones, fewer than the payloads they carry.
    private func assertHealthy(
        _ report: BenchReport,
        protocolName: String,
        gzip: Bool = false,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertEqual(report.protocolName, protocolName, file: file, line: line)
        XCTAssertEqual(report.connected, Self.clients, "connected: \(report.text)", file: file, line: line)
        XCTAssertEqual(report.connectErrors, 0, report.text, file: file, line: line)
        XCTAssertEqual(report.badStatus, 0, file: file, line: line)
        XCTAssertEqual(report.noResponse, 0, file: file, line: line)
        XCTAssertEqual(report.protocolErrors, 0, file: file, line: line)
        XCTAssertEqual(report.disconnects, 0, file: file, line: line)
        XCTAssertEqual(report.missing, 0, file: file, line: line)
        let expected = Double(Self.clients) * Self.rate * report.window
        XCTAssertEqual(
            Double(report.deliveries),
            expected,
            accuracy: expected * 0.2,
            "deliveries: \(report.text)",
            file: file,
            line: line
        )
        XCTAssertEqual(
            Int(report.latency.totalCount),
            report.deliveries,
            "one latency sample per delivery",
            file: file,
            line: line
        )
        if gzip {
            XCTAssertLessThan(
                report.bytes,
                report.deliveries * 64,
                "compressed below the 64-byte payloads",
                file: file,
                line: line
            )
        } else {
            XCTAssertGreaterThan(
                report.bytes,
                report.deliveries * 64,
                "each event carries the 64-byte payload",
                file: file,
                line: line
            )
        }
        XCTAssertLessThan(
            report.latency.valueAtPercentile(50),
            1_000_000,
            "latency in µs, under a second",
            file: file,
            line: line
        )
    }

    func testHTTP1ThroughTheGateway() async throws {
        try await self.withGateway { harness in
            let report = try await BenchRunner.run(self.options("http://127.0.0.1:\(harness.port)/feed"))
            self.assertHealthy(report, protocolName: "http/1.1")
            XCTAssertTrue(report.json.contains("\"no_response\":0"), report.json)
            try await eventually("the bench closed its connections") { try await self.feedClients(harness) == 0 }
        }
    }

    func testH2CThroughTheGateway() async throws {
        try await self.withGateway { harness in
            let report = try await BenchRunner.run(self.options("http://127.0.0.1:\(harness.port)/feed", http2: true))
            self.assertHealthy(report, protocolName: "h2c")
            try await eventually("the bench closed its streams") { try await self.feedClients(harness) == 0 }
        }
    }

    func testGzipOverHTTP1AndH2C() async throws {
        try await self.withGateway { harness in
            for http2 in [false, true] {
                var options = self.options("http://127.0.0.1:\(harness.port)/feed", http2: http2, duration: 1)
                options.gzip = true
                self.assertHealthy(
                    try await BenchRunner.run(options),
                    protocolName: http2 ? "h2c" : "http/1.1",
                    gzip: true
                )
            }
        }
    }

    func testHTTPSWithTestCAOverHTTP1AndH2() async throws {
        let certificates = try TestCertificates.make()
        try await self.withGateway(tls: certificates) { harness in
            let url = "https://localhost:\(harness.gateway.listenerAddresses[1].port!)/feed"
            for http2 in [false, true] {
                var options = self.options(url, http2: http2, duration: 1)
                options.caCertificateFile = certificates.caCertificate
                self.assertHealthy(try await BenchRunner.run(options), protocolName: http2 ? "h2" : "http/1.1")
            }
        }
    }

    func testHTTPSRefusesAnUntrustedCertificateUnlessInsecure() async throws {
        let certificates = try TestCertificates.make()
        try await self.withGateway(tls: certificates) { harness in
            var options = self.options(
                "https://127.0.0.1:\(harness.gateway.listenerAddresses[1].port!)/feed",
                duration: 0.3
            )
            options.clients = 3
            let refused = try await BenchRunner.run(options)
            XCTAssertEqual(refused.connectErrors, 3, refused.text)
            XCTAssertEqual(refused.connected, 0)
            XCTAssertTrue(refused.firstConnectError?.lowercased().contains("certificate") == true, refused.text)

            options.insecure = true
            let insecure = try await BenchRunner.run(options)
            XCTAssertEqual(insecure.connected, 3, insecure.text)
            XCTAssertEqual(insecure.connectErrors, 0)
        }
    }

    func testHTTP2OverTLSFailsClearlyWhenTheServerDoesNotSelectH2() async throws {
        let certificates = try TestCertificates.make()
        var origin = OriginServer.Options()
        origin.tls = try NIOSSLContext(
            configuration: .makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(certificates.serverCertificate).map {
                    .certificate($0)
                },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: certificates.serverKey, format: .pem))
            )
        )
        try await self.withOrigin(origin) { server in
            var options = self.options("https://localhost:\(server.port)/feed", http2: true, duration: 0.3)
            options.caCertificateFile = certificates.caCertificate
            do {
                let report = try await BenchRunner.run(options)
                XCTFail("an HTTP/1.1-only server gave a report: \(report.text)")
            } catch let error as BenchError {
                XCTAssertEqual(error.kind, .protocolMismatch)
                XCTAssertTrue(error.description.contains("did not select h2"), error.description)
            }
        }
    }

    func testNon200AnswersAreCountedAndClosed() async throws {
        var origin = OriginServer.Options()
        origin.rate = Self.rate
        try await self.withOrigin(origin) { server in
            server.behaviour = .status(404)
            var options = self.options("http://127.0.0.1:\(server.port)/missing", duration: 0.3)
            options.clients = 10
            let report = try await BenchRunner.run(options)
            XCTAssertEqual(report.badStatus, 10, report.text)
            XCTAssertEqual(report.connected, 0)
            XCTAssertEqual(report.noResponse, 0)
            XCTAssertEqual(report.deliveries, 0)
            XCTAssertTrue(report.json.contains("\"non_200\":10"), report.json)
            // The text says which counts cover the whole run (the 404s came before the window) and which the window.
            XCTAssertTrue(
                report.text.contains(
                    "whole run      over ramp-up, head wait and window: 0 connect errors, 10 non-200,"
                ),
                report.text
            )
            XCTAssertTrue(report.text.contains("(this line and those below: the measured window only)"), report.text)
            try await eventually("the bench closed its connections") { server.openConnections == 0 }
            let request = try XCTUnwrap(server.requests.first)
            XCTAssertEqual(request.uri, "/missing")
            XCTAssertEqual(request.headers["Host"], ["127.0.0.1:\(server.port)"])
            XCTAssertEqual(request.headers["Accept"], ["text/event-stream"])
            XCTAssertEqual(request.headers["Cache-Control"], ["no-cache"])
            XCTAssertEqual(request.headers["Accept-Encoding"], [], "no gzip unless asked")
        }
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
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let port = try await CommandLineTests.freePort(group: group)
        try await group.shutdownGracefully()
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

    /// A drain closes every client (HTTP/1.1: the connection; HTTP/2: the streams, then GOAWAY and the
    /// connection): each is a disconnect.
    func testGatewayDrainCountsEveryClientAsDisconnected() async throws {
        for http2 in [false, true] {
            try await self.withGateway(
                configure: { $0.shutdownTimeout = .milliseconds(400) },
                { harness in
                    var options = self.options("http://127.0.0.1:\(harness.port)/feed", http2: http2, duration: 2)
                    options.clients = 20
                    let bench = Task { try await BenchRunner.run(options) }
                    try await eventually("clients joined") { try await self.feedClients(harness) == 20 }
                    try await Task.sleep(nanoseconds: 300_000_000)
                    try await harness.gateway.drainAndShutdown()
                    let report = try await bench.value
                    XCTAssertEqual(report.disconnects, 20, "http2: \(http2): \(report.text)")
                    XCTAssertEqual(report.connected, 0, "http2: \(http2)")
                    XCTAssertGreaterThan(report.deliveries, 0)
                }
            )
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

    /// SSE events `seqs`, each sent now (`"ts":` in µs since the epoch).
    private static func events(_ seqs: ClosedRange<Int>, padding: Int = 0) -> String {
        let now = Int64(Date().timeIntervalSince1970 * 1e6)
        let pad = padding > 0 ? ",\"pad\":\"\(String(repeating: "x", count: padding))\"" : ""
        return seqs.map { "data: {\"seq\":\($0),\"ts\":\(now)\(pad)}\n\n" }.joined()
    }

    private static func gzip(_ text: String) throws -> ByteBuffer {
        var plain = ByteBuffer(string: text)
        return try plain.compress(with: .gzip)
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
                    var two = try! Self.gzip(Self.events(1...2))
                    two.writeImmutableBuffer(try! Self.gzip(Self.events(3...4)))
                    channel.writeAndFlush(two, promise: nil)
                }
                channel.eventLoop.scheduleTask(in: .milliseconds(250)) {
                    channel.writeAndFlush(try! Self.gzip(Self.events(5...6)), promise: nil)
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
                    var input = ByteBuffer(string: Self.events(1...count, padding: 200))
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
    /// last output with the buffer's end, the events of a piece are all counted from that piece.
    func testReceiverCountsEveryEventOfAGzipPieceWhateverItInflatesTo() throws {
        for count in stride(from: 1, through: 400, by: 3) {
            let loop = BenchLoopTally()
            loop.scratch = ByteBufferAllocator().buffer(capacity: 1024)
            var receiver = BenchStreamReceiver(loop: loop)
            receiver.requestSent()
            XCTAssertTrue(receiver.head(status: 200, gzip: true))
            let compressor = try ZlibCompressor(algorithm: .gzip)
            var input = ByteBuffer(string: Self.events(1...count, padding: count % 97))
            var piece = ByteBufferAllocator().buffer(capacity: compressor.maxSize(from: input) + 64)
            try compressor.deflate(from: &input, to: &piece, flush: .sync)
            try receiver.body(piece)
            XCTAssertEqual(loop.tally.events, count, "\(count) events in one piece")
        }
    }

    /// Bytes after a gzip member that start no member are malformed gzip: a protocol error, that client
    /// closed, and the run ends (the events of the member before are counted).
    func testJunkAfterAGzipMemberIsAProtocolError() async throws {
        try await self.withScriptedServer(
            { channel in
                channel.writeAndFlush(ByteBuffer(string: Self.gzipStreamHead), promise: nil)
                channel.eventLoop.scheduleTask(in: .milliseconds(200)) {
                    var body = try! Self.gzip(Self.events(1...2))
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
                        channel.writeAndFlush(ByteBuffer(string: Self.events(1...3)), promise: nil)
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
                XCTAssertLessThan(Date().timeIntervalSince(started), 3, "the handshake deadline is the connect timeout")
            }
        }
    }
}
