import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import SSEGateway

/// Poll responses on the HTTP/1 pipeline of one connection (embedded channel, virtual time): the request
/// parsers stay, the answer carries `Content-Length`, the connection serves the next request, `close`
/// is honoured, and a request pipelined behind a waiting poll closes the connection.
final class HTTP1PollTests: XCTestCase {
    private var gateway: EmbeddedGateway!
    private var channel: EmbeddedChannel!

    override func setUpWithError() throws {
        self.gateway = EmbeddedGateway(
            feeds: [
                try EmbeddedGateway.feed("/prices") { feed in
                    feed.settings.poll.timeout = .milliseconds(300)
                    feed.settings.poll.gather = .milliseconds(50)
                }
            ]
        )
        self.channel = try self.connectedChannel()
    }

    /// A new client connection with the gateway's HTTP/1 pipeline.
    private func connectedChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: self.gateway.loop)
        try DownstreamPipeline.configureHTTP1(
            channel: channel,
            context: self.gateway.context,
            limits: self.gateway.context.limits
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
        return channel
    }

    override func tearDownWithError() throws {
        _ = try? self.channel.finish()
        self.channel = nil
        self.gateway = nil
    }

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

    private static let poll = "GET /prices?transport=poll HTTP/1.1\r\nHost: gw\r\n"

    /// A drain (SIGTERM): a waiting poll's answer closes its connection, and a poll or a stream that
    /// arrives on a connection still open gets a 200 that carries only a jittered `retry:`, then the
    /// connection closes. `EventSource` reconnects after it, on a new connection, to another replica; a
    /// 503 (what both got before) ends an `EventSource` for good at every rolling restart.
    func testWhileDrainingPollsAndStreamsGetARetryAndTheConnectionCloses() throws {
        self.gateway.publish("/prices", ids: 1...2)
        XCTAssertEqual(try self.exchange(Self.poll + "Last-Event-ID: 2\r\n\r\n"), "", "waits")
        self.gateway.context.beginDraining()
        self.gateway.publish("/prices", ids: 3...3)
        self.gateway.loop.advanceTime(by: .milliseconds(50))
        let answered = try self.output()
        XCTAssertTrue(answered.contains("\r\nConnection: close\r\n"), answered)
        XCTAssertTrue(answered.hasSuffix("id: 3\ndata: event 3\n\n"), answered)
        XCTAssertFalse(self.channel.isActive, "closed after the answer")

        for request in [Self.poll + "Last-Event-ID: 3\r\n\r\n", "GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n"] {
            let channel = try self.connectedChannel()
            try channel.writeInbound(ByteBuffer(string: request))
            self.gateway.loop.run()
            var response = ""
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) { response += String(buffer: buffer) }
            XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK\r\n"), response)
            XCTAssertTrue(response.contains("Content-Type: text/event-stream"), response)
            XCTAssertTrue(response.contains("\r\nConnection: close\r\n"), response)
            let retry = try XCTUnwrap(response.components(separatedBy: "\r\n\r\n").last)
            let milliseconds = try XCTUnwrap(
                Int(retry.dropFirst("retry: ".count).dropLast(2)),
                "only a retry: \(retry.debugDescription)"
            )
            XCTAssertTrue(retry.hasPrefix("retry: ") && retry.hasSuffix("\n\n"), retry)
            XCTAssertTrue((3000...6000).contains(milliseconds), "the feed's 3 s retry, spread: \(milliseconds)")
            XCTAssertFalse(channel.isActive, "closed: the next try goes to a new connection")
            XCTAssertEqual(self.gateway.clients("/prices"), 0)
            _ = try? channel.finish()
        }
    }

    func testAWaitingPollTimesOutThenTheConnectionServesTheNextPoll() throws {
        self.gateway.publish("/prices", ids: 1...2)
        XCTAssertEqual(try self.exchange(Self.poll + "Last-Event-ID: 2\r\n\r\n"), "", "waits")
        XCTAssertEqual(self.gateway.clients("/prices"), 1)
        self.gateway.loop.advanceTime(by: .milliseconds(299))
        XCTAssertEqual(try self.output(), "")
        self.gateway.loop.advanceTime(by: .milliseconds(1))
        let response = try self.output()
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK\r\n"), response)
        XCTAssertTrue(
            response.contains("\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nretry: 250\n\n"),
            response
        )
        XCTAssertFalse(response.contains("Transfer-Encoding"), response)
        XCTAssertEqual(self.gateway.clients("/prices"), 0)
        let pipeline = self.channel.pipeline.syncOperations
        XCTAssertNoThrow(try pipeline.handler(type: HeadSizeLimiter.self), "the parsers stay for the next request")

        XCTAssertEqual(try self.exchange(Self.poll + "Last-Event-ID: 2\r\n\r\n"), "")
        self.gateway.publish("/prices", ids: 3...3)
        XCTAssertEqual(try self.output(), "", "gathering")
        self.gateway.loop.advanceTime(by: .milliseconds(50))
        let second = try self.output()
        XCTAssertTrue(second.hasSuffix("\r\n\r\nretry: 250\n\nid: 3\ndata: event 3\n\n"), second)
        XCTAssertTrue(second.contains("Content-Length: 33\r\n"), second)
        XCTAssertTrue(self.channel.isActive)
    }

    func testConnectionCloseIsHonoured() throws {
        self.gateway.publish("/prices", ids: 1...2)
        let response = try self.exchange(Self.poll + "Last-Event-ID: 1\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(response.contains("Connection: close\r\n"), response)
        XCTAssertTrue(response.hasSuffix("retry: 250\n\nid: 2\ndata: event 2\n\n"), response)
        self.gateway.loop.run()
        XCTAssertFalse(self.channel.isActive)
    }

    func testARequestPipelinedBehindAWaitingPollClosesTheConnection() throws {
        self.gateway.publish("/prices", ids: 1...1)
        try self.exchange(Self.poll + "Last-Event-ID: 1\r\n\r\n" + "GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        XCTAssertFalse(self.channel.isActive)
        XCTAssertEqual(self.gateway.clients("/prices"), 0)
        XCTAssertEqual(self.gateway.context.pollWaitingCount, 0)
    }
}
