import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import SSEGateway

/// The HTTP/1 pipeline of a client connection (`HeadSizeLimiter`, NIO's request decoder and
/// `HTTP1StreamHandler`, as `DownstreamPipeline.configureHTTP1` builds it) on an embedded channel, like
/// SwiftNIO's `HTTPDecoderTest`: request bytes in, response bytes out, no sockets.
final class HTTP1StreamHandlerTests: XCTestCase {
    private var gateway: EmbeddedGateway!
    private var channel: EmbeddedChannel!

    override func setUpWithError() throws {
        self.gateway = EmbeddedGateway(
            feeds: [
                try EmbeddedGateway.feed("/prices") { feed in
                    feed.settings.retry = .milliseconds(2000)
                    feed.settings.keepalive = .milliseconds(1)
                }
            ]
        )
        self.channel = EmbeddedChannel(loop: self.gateway.loop)
        try DownstreamPipeline.configureHTTP1(
            channel: self.channel,
            context: self.gateway.context,
            limits: self.gateway.context.limits
        )
        try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
    }

    override func tearDownWithError() throws {
        _ = try? self.channel.finish()
        self.channel = nil
        self.gateway = nil
    }

    /// Writes `request` in and returns every byte the pipeline wrote out since the last call.
    @discardableResult
    private func exchange(_ request: String) throws -> String {
        try self.channel.writeInbound(ByteBuffer(string: request))
        self.gateway.loop.run()
        return try self.output()
    }

    private func output() throws -> String {
        var text = ""
        while let buffer = try self.channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: buffer)
        }
        return text
    }

    private func head(of response: String) -> (status: String, headers: [String]) {
        let head = response.components(separatedBy: "\r\n\r\n")[0].components(separatedBy: "\r\n")
        return (head[0], Array(head.dropFirst()))
    }

    // MARK: Streams

    func testAGetOfAFeedAnswersTheEventStreamHeadThenChunkedEvents() throws {
        let response = try self.exchange("GET /prices HTTP/1.1\r\nHost: gw\r\nAccept: text/event-stream\r\n\r\n")
        let (status, headers) = self.head(of: response)
        XCTAssertEqual(status, "HTTP/1.1 200 OK")
        XCTAssertTrue(headers.contains("Content-Type: text/event-stream; charset=utf-8"), "\(headers)")
        XCTAssertTrue(headers.contains("Cache-Control: no-cache, no-transform"), "\(headers)")
        XCTAssertTrue(headers.contains("Transfer-Encoding: chunked"), "\(headers)")
        XCTAssertTrue(headers.contains("Connection: keep-alive"), "\(headers)")
        XCTAssertFalse(headers.contains { $0.hasPrefix("Content-Length") }, "a stream has no length")
        XCTAssertTrue(response.hasSuffix("\r\n\r\nd\r\nretry: 2000\n\n\r\n"), response)
        XCTAssertEqual(self.gateway.clients("/prices"), 1)

        self.gateway.publish("/prices", ids: 7...7)
        XCTAssertEqual(try self.output(), "15\r\nid: 7\ndata: event 7\n\n\r\n")
    }

    /// Once the stream started, the request-side handlers have left and bytes the client sends are ignored.
    func testAStreamRemovesTheRequestHandlersAndIgnoresWhatTheClientSends() throws {
        try self.exchange("GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        let pipeline = self.channel.pipeline.syncOperations
        XCTAssertThrowsError(try pipeline.handler(type: HeadSizeLimiter.self))
        XCTAssertThrowsError(try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self))
        XCTAssertEqual(try self.exchange("GET /other HTTP/1.1\r\nHost: gw\r\n\r\nnot http at all\r\n\r\n"), "")
        XCTAssertTrue(self.channel.isActive)
    }

    /// `Connection: close` from the client: the stream's head says `close` (and stays chunked).
    func testAClientThatAsksForCloseGetsConnectionClose() throws {
        let response = try self.exchange("GET /prices HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        let headers = self.head(of: response).headers
        XCTAssertTrue(headers.contains("Connection: close"), "\(headers)")
        XCTAssertTrue(headers.contains("Transfer-Encoding: chunked"), "\(headers)")
    }

    /// HTTP/1.0 has no chunking: the events go out raw and the connection closes at the end.
    func testHTTP10StreamsRawAndSaysClose() throws {
        let response = try self.exchange("GET /prices HTTP/1.0\r\n\r\n")
        let (status, headers) = self.head(of: response)
        XCTAssertEqual(status, "HTTP/1.1 200 OK")
        XCTAssertTrue(headers.contains("Connection: close"), "\(headers)")
        XCTAssertFalse(headers.contains("Transfer-Encoding: chunked"), "\(headers)")
        XCTAssertTrue(response.hasSuffix("\r\n\r\nretry: 2000\n\n"), response)
        self.gateway.publish("/prices", ids: 1...1)
        XCTAssertEqual(try self.output(), "id: 1\ndata: event 1\n\n")
    }

    /// The loop's timer sends a keepalive comment to a client with nothing to read.
    func testAnIdleStreamGetsAKeepaliveComment() throws {
        try self.exchange("GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        self.gateway.hub.start(tickInterval: .milliseconds(10))
        self.gateway.loop.run()
        usleep(5_000)  // past the 1 ms keepalive on the real clock the shard reads
        self.gateway.loop.advanceTime(by: .milliseconds(10))
        XCTAssertEqual(try self.output(), "d\r\n: keepalive\n\n\r\n")
        self.gateway.hub.stopTimer()
    }

    /// The client closes its connection: it leaves the feed and frees its client slot.
    func testAClientCloseLeavesTheFeedAndFreesTheSlot() throws {
        try self.exchange("GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        XCTAssertEqual(self.gateway.context.clientCount, 1)
        try self.channel.close().wait()
        self.gateway.loop.run()
        XCTAssertEqual(self.gateway.context.clientCount, 0)
        XCTAssertEqual(self.gateway.clients("/prices"), 0)
    }

    /// HEAD: the stream's head, no body, and the connection serves the next request.
    func testHeadAnswersTheStreamHeadWithoutABodyAndKeepsTheConnection() throws {
        let response = try self.exchange("HEAD /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        XCTAssertEqual(self.head(of: response).status, "HTTP/1.1 200 OK")
        XCTAssertTrue(response.hasSuffix("\r\n\r\n"), "no body: \(response.debugDescription)")
        XCTAssertTrue(self.head(of: response).headers.contains("Connection: keep-alive"))
        XCTAssertEqual(self.gateway.context.clientCount, 0, "HEAD takes no client slot")
        let next = try self.exchange("GET /nope HTTP/1.1\r\nHost: gw\r\n\r\n")
        XCTAssertEqual(self.head(of: next).status, "HTTP/1.1 404 Not Found")
    }

    // MARK: Other answers

    /// 404 with a length, and the connection stays open for the next request (keep-alive).
    func testAnUnknownPathIs404AndTheConnectionServesTheNextRequest() throws {
        let response = try self.exchange("GET /nope HTTP/1.1\r\nHost: gw\r\n\r\n")
        let (status, headers) = self.head(of: response)
        XCTAssertEqual(status, "HTTP/1.1 404 Not Found")
        XCTAssertTrue(headers.contains("Content-Length: 10"), "\(headers)")
        XCTAssertTrue(response.hasSuffix("\r\n\r\nnot found\n"), response)
        XCTAssertTrue(self.channel.isActive)
        let second = try self.exchange("GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        XCTAssertEqual(self.head(of: second).status, "HTTP/1.1 200 OK")
    }

    func testAnUnsupportedMethodIs405WithAllow() throws {
        let response = try self.exchange("POST /prices HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n")
        let (status, headers) = self.head(of: response)
        XCTAssertEqual(status, "HTTP/1.1 405 Method Not Allowed")
        XCTAssertTrue(headers.contains("Allow: GET, HEAD, OPTIONS"), "\(headers)")
        XCTAssertTrue(self.channel.isActive)
    }

    /// A request body after a non-stream answer is skipped; the request after it is served.
    func testARequestBodyIsSkippedBeforeTheNextRequest() throws {
        let response = try self.exchange(
            "POST /prices HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhelloGET /nope HTTP/1.1\r\nHost: gw\r\n\r\n"
        )
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 405"), response)
        XCTAssertTrue(response.contains("HTTP/1.1 404 Not Found"), response)
    }

    /// HTTP/1.1 without `Host`: 400, and the connection closes after it.
    func testAMissingHostIs400AndCloses() throws {
        let response = try self.exchange("GET /prices HTTP/1.1\r\n\r\n")
        let (status, headers) = self.head(of: response)
        XCTAssertEqual(status, "HTTP/1.1 400 Bad Request")
        XCTAssertTrue(headers.contains("Connection: close"), "\(headers)")
        XCTAssertFalse(self.channel.isActive)
    }

    /// Bytes that are not HTTP: 400 and close.
    func testMalformedRequestIs400AndCloses() throws {
        let response = try self.exchange("\u{1}\u{2} nonsense\r\n\r\n")
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), response)
        XCTAssertFalse(self.channel.isActive)
    }

    /// `Connection: close` on a non-stream request: the answer says so and the connection closes.
    func testConnectionCloseOnA404ClosesAfterTheAnswer() throws {
        let response = try self.exchange("GET /nope HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(self.head(of: response).headers.contains("Connection: close"))
        XCTAssertFalse(self.channel.isActive)
    }

    /// No request head within `header_timeout`: the connection closes.
    func testNoRequestHeadWithinTheHeaderTimeoutCloses() throws {
        self.gateway.loop.advanceTime(by: self.gateway.context.limits.headerTimeout - .milliseconds(1))
        XCTAssertTrue(self.channel.isActive)
        self.gateway.loop.advanceTime(by: .milliseconds(2))
        XCTAssertFalse(self.channel.isActive)
        XCTAssertEqual(try self.output(), "")
    }

    /// A head larger than `max_header_bytes`: 431 and close.
    func testAHeadOverTheLimitIs431() throws {
        let big = String(repeating: "a", count: self.gateway.context.limits.maxHeaderBytes)
        let response = try self.exchange("GET /prices HTTP/1.1\r\nHost: gw\r\nX-Big: \(big)\r\n\r\n")
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 431"), response)
        XCTAssertFalse(self.channel.isActive)
        XCTAssertEqual(self.gateway.context.clientCount, 0)
    }
}
