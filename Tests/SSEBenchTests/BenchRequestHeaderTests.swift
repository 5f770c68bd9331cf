import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import XCTest

@testable import SSEBench

/// `--header`: a header the bench sends on every request reaches the server over HTTP/1.1 (in the request
/// head) and over HTTP/2 (in the HPACK-coded HEADERS), and the stream opens are reported.
final class BenchRequestHeaderTests: XCTestCase {
    private static let token = "Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln"
    private static let streamHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    private static let refusal = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"

    private func options(_ port: Int, http2: Bool, headers: [BenchRequestHeader]) -> BenchOptions {
        var options = BenchOptions(url: "http://127.0.0.1:\(port)/feed")
        options.clients = 6
        options.http2 = http2
        options.streamsPerConnection = 4  // 6 clients: 2 connections, one part-full
        options.duration = 0.3
        options.headWait = 2
        options.headers = headers
        return options
    }

    /// Runs `body` with a server on 127.0.0.1 that opens a stream (200 and one event) for a request whose
    /// `Authorization` is exactly the token and answers any other with 401.
    private func withCheckingServer(http2: Bool, _ body: (Int) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try await ServerBootstrap(group: group).childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let pipeline = channel.pipeline.syncOperations
                guard http2 else {
                    try pipeline.addHandler(HTTP1Checker())
                    return
                }
                _ = try pipeline.configureHTTP2Pipeline(
                    mode: .server,
                    connectionConfiguration: .init(),
                    streamConfiguration: .init()
                ) { stream in
                    stream.eventLoop.makeCompletedFuture {
                        try stream.pipeline.syncOperations.addHandler(HTTP2Checker())
                    }
                }
            }
        }.bind(host: "127.0.0.1", port: 0).get()
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

    /// Reads an HTTP/1.1 request head and answers by its `Authorization` line.
    private final class HTTP1Checker: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var head = ""
        private var answered = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !self.answered else { return }
            self.head += String(buffer: self.unwrapInboundIn(data))
            guard let end = self.head.range(of: "\r\n\r\n") else { return }
            self.answered = true
            let lines = self.head[..<end.lowerBound].split(separator: "\r\n").dropFirst()
            let allowed = lines.contains { $0 == "Authorization: \(BenchRequestHeaderTests.token)" }
            let answer =
                allowed
                ? BenchRequestHeaderTests.streamHead + BenchTestBodies.events(1...1) : BenchRequestHeaderTests.refusal
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: answer)), promise: nil)
        }
    }

    /// Reads an HTTP/2 request's HEADERS and answers by its `authorization` field.
    private final class HTTP2Checker: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .headers(let request) = self.unwrapInboundIn(data) else { return }
            let allowed = request.headers["authorization"] == [BenchRequestHeaderTests.token]
            let head = HPACKHeaders([(":status", allowed ? "200" : "401"), ("content-type", "text/event-stream")])
            context.write(self.wrapOutboundOut(.headers(.init(headers: head, endStream: !allowed))), promise: nil)
            if allowed {
                let event = ByteBuffer(string: BenchTestBodies.events(1...1))
                context.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(event)))), promise: nil)
            }
            context.flush()
        }
    }

    func testHeaderReachesTheServerOverHTTP1AndHTTP2() async throws {
        let header = try BenchRequestHeader(parsing: "Authorization: \(Self.token)")
        for http2 in [false, true] {
            try await self.withCheckingServer(http2: http2) { port in
                let report = try await BenchRunner.run(self.options(port, http2: http2, headers: [header]))
                XCTAssertEqual(report.connected, 6, "http2: \(http2): \(report.text)")
                XCTAssertEqual(report.badStatus, 0, "http2: \(http2): \(report.text)")
                XCTAssertEqual(report.opens.opened, 6, "http2: \(http2): \(report.text)")
                XCTAssertGreaterThan(report.opens.perSecond, 0, report.text)
                XCTAssertEqual(report.opens.latencyMicros.totalCount, 6, report.text)
                XCTAssertTrue(report.json.contains("\"stream_opens\":6"), report.json)

                // Without the header the same server refuses every client: the check above is real.
                let refused = try await BenchRunner.run(self.options(port, http2: http2, headers: []))
                XCTAssertEqual(refused.badStatus, 6, "http2: \(http2): \(refused.text)")
                XCTAssertEqual(refused.opens.opened, 0, refused.text)
            }
        }
    }

    func testHeaderParsing() throws {
        let parsed = try BenchRequestHeader(parsing: "X-Token:\t  a: b ")
        XCTAssertEqual(parsed, try BenchRequestHeader(parsing: "X-Token:a: b "))
        XCTAssertEqual(parsed.name, "X-Token")
        XCTAssertEqual(parsed.value, "a: b ")
        for bad in ["no colon", ": value", "Bad Name: x", "Host: example.com", "Connection: close", "X: a\r\nY: b"] {
            XCTAssertThrowsError(try BenchRequestHeader(parsing: bad), bad) { error in
                XCTAssertEqual((error as? BenchError)?.kind, .usage, bad)
                XCTAssertFalse(String(describing: error).contains("b\r\n"), "the value is not echoed")
            }
        }
    }
}
