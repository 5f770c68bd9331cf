import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import XCTest

@testable import SSEGateway

/// `HTTP2StreamHandler` alone on an embedded channel standing in for one HTTP/2 stream channel:
/// `HTTP2Frame.FramePayload`s in (the request HEADERS), payloads out (response HEADERS and DATA).
final class HTTP2StreamHandlerTests: XCTestCase {
    private var gateway: EmbeddedGateway!
    private var channel: EmbeddedChannel!

    override func setUpWithError() throws {
        self.gateway = EmbeddedGateway(
            feeds: [try EmbeddedGateway.feed("/prices") { $0.settings.retry = .milliseconds(2000) }]
        )
        self.channel = EmbeddedChannel(loop: self.gateway.loop)
        try self.channel.pipeline.syncOperations.addHandler(HTTP2StreamHandler(gateway: self.gateway.context))
        try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
    }

    override func tearDownWithError() throws {
        _ = try? self.channel.finish()
        self.channel = nil
        self.gateway = nil
    }

    private func request(
        _ path: String,
        method: String = "GET",
        headers: [(String, String)] = [],
        pseudo: [(String, String)]? = nil
    ) throws {
        var block = HPACKHeaders(
            pseudo ?? [(":method", method), (":scheme", "http"), (":path", path), (":authority", "gw")]
        )
        for (name, value) in headers { block.add(name: name, value: value) }
        try self.channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: block, endStream: true)))
        self.gateway.loop.run()
    }

    private func outbound() throws -> [HTTP2Frame.FramePayload] {
        var frames: [HTTP2Frame.FramePayload] = []
        while let frame = try self.channel.readOutbound(as: HTTP2Frame.FramePayload.self) {
            frames.append(frame)
        }
        return frames
    }

    private func headers(_ frame: HTTP2Frame.FramePayload?) -> (HPACKHeaders, endStream: Bool)? {
        guard case .headers(let headers) = frame else { return nil }
        return (headers.headers, headers.endStream)
    }

    private func data(_ frame: HTTP2Frame.FramePayload?) -> (String, endStream: Bool)? {
        guard case .data(let data) = frame, case .byteBuffer(let buffer) = data.data else { return nil }
        return (String(buffer: buffer), data.endStream)
    }

    func testAGetOfAFeedAnswersEventStreamHeadersThenDataFrames() throws {
        try self.request("/prices")
        let frames = try self.outbound()
        XCTAssertEqual(frames.count, 2, "\(frames)")
        let head = try XCTUnwrap(self.headers(frames.first))
        XCTAssertEqual(head.0.first(name: ":status"), "200")
        XCTAssertEqual(head.0.first(name: "content-type"), "text/event-stream; charset=utf-8")
        XCTAssertEqual(head.0.first(name: "cache-control"), "no-cache, no-transform")
        XCTAssertFalse(head.endStream)
        for name in ["connection", "transfer-encoding", "keep-alive"] {
            XCTAssertFalse(head.0.contains(name: name), "no \(name) in HTTP/2")
        }
        XCTAssertEqual(self.data(frames.last)?.0, "retry: 2000\n\n", "the prelude, unframed")
        XCTAssertEqual(self.gateway.clients("/prices"), 1)

        self.gateway.publish("/prices", ids: 1...2)
        let events = try self.outbound().compactMap { self.data($0)?.0 }.joined()
        XCTAssertEqual(events, "id: 1\ndata: event 1\n\nid: 2\ndata: event 2\n\n")
    }

    /// The feed goes away: the stream ends with an empty DATA frame carrying END_STREAM.
    func testTheEndOfAFeedEndsTheStream() throws {
        try self.request("/prices")
        _ = try self.outbound()
        self.gateway.hub.shard(for: self.gateway.feed(at: "/prices")).endAll(retry: .seconds(3), reason: .feedRemoved)
        let frames = try self.outbound()
        XCTAssertEqual(self.data(frames.first)?.0, "retry: 3000\n\n")
        XCTAssertEqual(self.data(frames.last)?.endStream, true)
    }

    /// The client resets the stream (its channel closes): it leaves the feed and frees its slot.
    func testAClosedStreamLeavesTheFeedAndFreesTheSlot() throws {
        try self.request("/prices")
        XCTAssertEqual(self.gateway.context.clientCount, 1)
        try self.channel.close().wait()
        self.gateway.loop.run()
        XCTAssertEqual(self.gateway.context.clientCount, 0)
        XCTAssertEqual(self.gateway.clients("/prices"), 0)
    }

    /// Only the first HEADERS frame is a request; trailers or a second HEADERS are ignored.
    func testASecondHeadersFrameIsIgnored() throws {
        try self.request("/prices")
        _ = try self.outbound()
        try self.request("/nope")
        XCTAssertEqual(try self.outbound().count, 0)
    }

    func testHeadAnswersHeadersWithEndStreamAndNoClient() throws {
        try self.request("/prices", method: "HEAD")
        let frames = try self.outbound()
        XCTAssertEqual(frames.count, 1)
        let head = try XCTUnwrap(self.headers(frames.first))
        XCTAssertEqual(head.0.first(name: ":status"), "200")
        XCTAssertTrue(head.endStream)
        XCTAssertEqual(self.gateway.context.clientCount, 0)
    }

    func testAnUnknownPathIs404WithALengthAndABody() throws {
        try self.request("/nope")
        let frames = try self.outbound()
        let head = try XCTUnwrap(self.headers(frames.first))
        XCTAssertEqual(head.0.first(name: ":status"), "404")
        XCTAssertEqual(head.0.first(name: "content-length"), "10")
        XCTAssertFalse(head.endStream)
        XCTAssertEqual(self.data(frames.last)?.0, "not found\n")
        XCTAssertEqual(self.data(frames.last)?.endStream, true)
    }

    func testAnUnsupportedMethodIs405WithAllow() throws {
        try self.request("/prices", method: "DELETE")
        let head = try XCTUnwrap(self.headers(try self.outbound().first))
        XCTAssertEqual(head.0.first(name: ":status"), "405")
        XCTAssertEqual(head.0.first(name: "allow"), "GET, HEAD, OPTIONS")
    }

    /// HEADERS without `:path` (the HTTP/2 layer validates more; this is what reaches the handler): 400.
    func testARequestWithoutAPathIs400() throws {
        try self.request("", pseudo: [(":method", "GET"), (":scheme", "http"), (":authority", "gw")])
        let frames = try self.outbound()
        XCTAssertEqual(self.headers(frames.first)?.0.first(name: ":status"), "400")
        XCTAssertEqual(self.data(frames.last)?.endStream, true)
    }

    /// `:authority` stands in for `Host`: no 400 for a missing Host header over HTTP/2.
    func testTheRequestHeadTakesHostFromAuthority() throws {
        let head = try XCTUnwrap(
            HTTP2StreamHandler.requestHead(
                HPACKHeaders([(":method", "GET"), (":path", "/a?b=1"), (":authority", "gw:8080"), ("x-a", "1")])
            )
        )
        XCTAssertEqual(head.uri, "/a?b=1")
        XCTAssertEqual(head.headers["Host"], ["gw:8080"])
        XCTAssertEqual(head.headers["x-a"], ["1"])
        XCTAssertFalse(head.headers.contains(name: ":path"))
    }

    /// A client over `max_clients` gets a 503 with `Retry-After` on its stream.
    func testAClientOverMaxClientsGets503() throws {
        var limits = LimitsConfig()
        limits.maxClients = 0
        self.gateway.context.setLimits(limits)
        try self.request("/prices")
        let frames = try self.outbound()
        let head = try XCTUnwrap(self.headers(frames.first))
        XCTAssertEqual(head.0.first(name: ":status"), "503")
        XCTAssertEqual(head.0.first(name: "retry-after"), "2")
        XCTAssertEqual(self.data(frames.last)?.0, "too many clients\n")
    }
}
