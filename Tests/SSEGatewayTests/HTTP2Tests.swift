import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// HTTP/2 downstream (SPEC §3 over h2c with prior knowledge and over TLS with ALPN): multiplexed streams,
/// per-stream backpressure (RST_STREAM, never the connection), routing answers, stream limits, and curl.
final class HTTP2Tests: XCTestCase {
    /// Response headers a stream must carry, and the connection-specific ones HTTP/2 forbids.
    private func assertStreamHeaders(
        _ snapshot: H2TestStream.Snapshot,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertEqual(snapshot.status, 200, file: file, line: line)
        XCTAssertEqual(snapshot.header("content-type"), ["text/event-stream; charset=utf-8"], file: file, line: line)
        XCTAssertEqual(snapshot.header("cache-control"), ["no-cache, no-transform"], file: file, line: line)
        XCTAssertEqual(snapshot.header("x-accel-buffering"), ["no"], file: file, line: line)
        for forbidden in [
            "connection", "transfer-encoding", "keep-alive", "upgrade", "proxy-connection", "content-length",
        ] {
            XCTAssertEqual(
                snapshot.header(forbidden),
                [],
                "\(forbidden) must not be sent on an HTTP/2 stream",
                file: file,
                line: line
            )
        }
        for (name, _, _) in snapshot.headers ?? HPACKHeaders() {
            XCTAssertEqual(name, name.lowercased(), "HTTP/2 header names are lower case", file: file, line: line)
        }
    }

    // MARK: Multiplexing

    func testTenConcurrentStreamsOnOneH2CConnectionGetEveryEventInOrder() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let client = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        var streams: [H2TestStream] = []
        for _ in 0..<10 { streams.append(try await client.request("/prices")) }
        for stream in streams { self.assertStreamHeaders(try await stream.waitForHeaders()) }
        try await harness.waitUntilJoined(10)

        let total = 60
        for index in 1...total {
            if index % 3 == 0 {
                harness.origin.publish(data: "line one \(index)\nline two", type: "multi")
            } else {
                harness.origin.publish(data: "event \(index)")
            }
        }
        for stream in streams {
            let events = try await stream.waitForEvents(total)
            XCTAssertEqual(events.count, total)
            XCTAssertEqual(events.map(\.id), (1...total).map { String($0) }, "every event, in order, once")
            XCTAssertEqual(events[2].type, "multi")
            XCTAssertEqual(events[2].data, "line one 3\nline two")
            XCTAssertEqual(events[0].data, "event 1")
            XCTAssertTrue(
                stream.snapshot.body.hasPrefix("retry: "),
                "a stream starts with retry: \(stream.snapshot.body.prefix(40))"
            )
            XCTAssertNil(stream.snapshot.reset)
            XCTAssertFalse(stream.snapshot.endStream)
        }
        XCTAssertFalse(client.isClosed)
        XCTAssertEqual(harness.origin.totalConnections, 1, "one upstream connection for ten streams")

        // The same cleartext port still speaks HTTP/1.1.
        let http1 = try await harness.client("/prices")
        let head = try await http1.waitForHead()
        XCTAssertEqual(head.version, .http1_1)
        XCTAssertEqual(head.status, .ok)
        XCTAssertEqual(head.headers["Transfer-Encoding"], ["chunked"])
        try await harness.waitUntilJoined(11)
        harness.origin.publish(data: "to everyone")
        let overHTTP1 = try await http1.waitForEvents(1)
        XCTAssertEqual(overHTTP1.map(\.data), ["to everyone"])
        for stream in streams {
            let events = try await stream.waitForEvents(total + 1)
            XCTAssertEqual(events.last?.data, "to everyone")
        }

        // A stream the client cancels frees its client slot; the other streams carry on.
        await streams[0].cancel()
        try await harness.waitUntilJoined(10)
        harness.origin.publish(data: "after cancel")
        for stream in streams.dropFirst() {
            let events = try await stream.waitForEvents(total + 2)
            XCTAssertEqual(events.last?.data, "after cancel")
        }
        await http1.close()
        await client.close()
    }

    // MARK: Backpressure

    func testStalledStreamIsResetWhileOtherStreamsOnTheConnectionGetEveryEvent() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.client.maxQueue = 256 * 1024
                    $0.settings.client.maxLag = .seconds(30)
                    $0.settings.replay.maxEvents = 10
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        // 1 MiB per stream, a browser-like window (the connection's is 16 MiB, updated as data arrives).
        let streamWindow = 1 << 20
        let client = try await H2TestClient.connect(
            port: harness.port,
            group: harness.clientGroup,
            streamWindow: streamWindow
        )
        // Never read: no WINDOW_UPDATE is sent for it, so its send window runs out on the server.
        let stalled = try await client.request("/prices", reading: false)
        var readers: [H2TestStream] = []
        for _ in 0..<3 { readers.append(try await client.request("/prices", recordBody: false)) }
        for reader in readers { _ = try await reader.waitForHeaders() }
        try await harness.waitUntilJoined(4)

        // 300 events of 8 KiB (2.4 MiB), far beyond the stalled stream's window and max_queue, paced so
        // that the readers keep up: their three streams share one client connection and event loop.
        let payload = String(repeating: "p", count: 8 * 1024)
        let total = 300
        for index in 1...total {
            harness.origin.publish(data: "\(index) \(payload)")
            // 40 KiB per 10 ms: a reader on a busy machine (the suite beside a build) must not fall 256 KiB behind.
            if index % 5 == 0 { try await Task.sleep(nanoseconds: 10_000_000) }
        }
        for reader in readers {
            let events = try await reader.waitForEvents(total, timeout: .seconds(20))
            XCTAssertEqual(events.map(\.id), (1...total).map { String($0) }, "every event, in order")
            XCTAssertNil(reader.snapshot.reset)
        }
        try await eventually("stalled stream evicted") {
            try await harness.metrics().delivery["/prices"]?.evictionsMaxQueue == 1
        }
        let reset = try await stalled.wait("RST_STREAM on the stalled stream") { $0.reset != nil || $0.closed }
        XCTAssertEqual(reset.reset, .cancel, "eviction resets the stream (RST_STREAM CANCEL)")
        XCTAssertLessThanOrEqual(reset.bodyBytes, streamWindow, "the server never sends past the stream's window")

        // The connection and the other streams are untouched; a new stream on the same connection works.
        XCTAssertFalse(client.isClosed, "an eviction must reset the stream, not close the connection")
        XCTAssertNil(client.snapshot.goAway)
        let fresh = try await client.request("/prices")
        self.assertStreamHeaders(try await fresh.waitForHeaders())
        try await harness.waitUntilJoined(4)
        harness.origin.publish(data: "after eviction")
        let freshEvents = try await fresh.waitForEvents(1)
        XCTAssertEqual(freshEvents.last?.data, "after eviction")
        for reader in readers {
            let events = try await reader.waitForEvents(total + 1)
            XCTAssertEqual(events.last?.data, "after eviction")
        }
        let snapshot = try await harness.metrics()
        XCTAssertEqual(snapshot.connectedClients, 4)
        XCTAssertEqual(snapshot.delivery["/prices"]?.evictionsMaxQueue, 1)
        XCTAssertEqual(snapshot.queuedBytes, 0)
        await client.close()
    }

    /// A gateway with `/prices` evicting at `maxLag` and keepalives far away (30 s), its upstream connected.
    private static func quietFeed(maxLag: TimeAmount) async throws -> Harness {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.client.maxLag = maxLag
                    $0.settings.keepalive = .seconds(30)
                }
            ]
        }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        return harness
    }

    /// A stream whose window is shut on a quiet feed holds far less than the stream's 64 KiB watermark, so
    /// its channel never turns unwritable; `max_lag` must still reset it (SPEC §3: a client whose oldest
    /// unsent event is older than max_lag is evicted); the connection stays, and a reading client goes on.
    func testStreamWithAShutWindowOnAQuietFeedIsResetAfterMaxLag() async throws {
        let maxLag = TimeAmount.milliseconds(600)
        let harness = try await Self.quietFeed(maxLag: maxLag)
        self.addTeardownBlock { await harness.stop() }
        // A 1 KiB window: the first event of 2 KiB shuts it, and nothing after it can be sent.
        let client = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup, streamWindow: 1024)
        let stalled = try await client.request("/prices", reading: false)
        let readerConnection = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        let reader = try await readerConnection.request("/prices")
        try await harness.waitUntilJoined(2)
        let payload = String(repeating: "q", count: 2048)
        let start = NIODeadline.now()
        // A quiet feed: one small event every 100 ms, 4 KiB in all, far below the 64 KiB watermark.
        var sent = 0
        while sent < 20, try await harness.metrics().delivery["/prices"]?.evictionsMaxLag ?? 0 == 0 {
            harness.origin.publish(data: sent == 0 ? payload : "tick \(sent)")
            sent += 1
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let reset = try await stalled.wait("RST_STREAM on the stream with a shut window", timeout: .seconds(8)) {
            $0.reset != nil || $0.closed
        }
        let elapsed = NIODeadline.now() - start
        XCTAssertEqual(reset.reset, .cancel)
        XCTAssertLessThan(
            elapsed,
            maxLag + .seconds(4),
            "reset after max_lag (\(maxLag)) plus a tick or two (and a loaded machine's slack), not when 64 KiB have piled up"
        )
        XCTAssertLessThanOrEqual(reset.bodyBytes, 1024, "the server never sends past the stream's window")
        let evictions = try await harness.metrics().delivery["/prices"]?.evictionsMaxLag
        XCTAssertEqual(evictions, 1)
        XCTAssertFalse(client.isClosed, "only the stream is reset")
        harness.origin.publish(data: "after")
        let events = try await reader.waitForEvents(sent + 1)
        XCTAssertEqual(events.last?.data, "after")
        await client.close()
        await readerConnection.close()
    }

    /// The window is shut by an event that no probe rides on (the probe went with the event before), and
    /// then the feed is silent: the next write would be a keepalive 30 s later, yet the stream must be reset
    /// after max_lag and a tick or two.
    func testStreamWhoseWindowAShortBurstShutIsResetAfterMaxLagThoughTheFeedThenStaysSilent() async throws {
        let maxLag = TimeAmount.milliseconds(600)
        let harness = try await Self.quietFeed(maxLag: maxLag)
        self.addTeardownBlock { await harness.stop() }
        let client = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup, streamWindow: 1024)
        let stalled = try await client.request("/prices", reading: false)
        try await harness.waitUntilJoined(1)
        // A few small events over more than a tick: one of them carries a probe, confirmed at once.
        for index in 0..<4 {
            harness.origin.publish(data: "small \(index)")
            try await Task.sleep(nanoseconds: 60_000_000)
        }
        let start = NIODeadline.now()
        harness.origin.publish(data: String(repeating: "q", count: 2048))
        let reset = try await stalled.wait("RST_STREAM on the stream with a shut window", timeout: .seconds(8)) {
            $0.reset != nil || $0.closed
        }
        let elapsed = NIODeadline.now() - start
        XCTAssertEqual(reset.reset, .cancel)
        XCTAssertLessThan(
            elapsed,
            maxLag + .seconds(4),
            "reset after max_lag (\(maxLag)) and a tick or two (and a loaded machine's slack), not at the next keepalive (30 s)"
        )
        let evictions = try await harness.metrics().delivery["/prices"]?.evictionsMaxLag
        XCTAssertEqual(evictions, 1)
        XCTAssertFalse(client.isClosed, "only the stream is reset")
        await client.close()
    }

    func testBurstLargerThanTheStreamBufferReachesReadingStreams() async throws {
        // Events that reach the gateway together are written to each client as one batch, flushed once.
        // A batch larger than a stream's buffer (64 KiB) plus `max_queue` must not evict a stream whose
        // client reads everything: the bytes were never offered to HTTP/2 at all.
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.client.maxQueue = 16 * 1024
                    $0.settings.client.maxLag = .seconds(30)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let client = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        var streams: [H2TestStream] = []
        for _ in 0..<2 { streams.append(try await client.request("/prices", recordBody: false)) }
        for stream in streams { _ = try await stream.waitForHeaders() }
        try await harness.waitUntilJoined(2)

        // Three bursts of 12 events of 8 KiB (96 KiB), each in one write from the origin.
        let payload = String(repeating: "b", count: 8 * 1024)
        var next = 1
        for _ in 0..<3 {
            var burst = ByteBuffer()
            for _ in 0..<12 {
                burst.writeString("id: \(next)\ndata: \(payload)\n\n")
                next += 1
            }
            harness.origin.broadcast(burst)
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let total = next - 1
        for stream in streams {
            let events = try await stream.waitForEvents(total)
            XCTAssertEqual(events.map(\.id), (1...total).map { String($0) })
            XCTAssertNil(stream.snapshot.reset)
        }
        let evictions = try await harness.metrics().delivery["/prices"]?.evictionsMaxQueue
        XCTAssertEqual(evictions, 0)
        await client.close()
    }

    // MARK: Routing

    func testNotFoundMethodNotAllowedHeadAndOptionsOverHTTP2() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.cors.allowOrigins = ["https://app.example"]
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let client = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)

        let notFound = try await client.request("/nope").waitForEnd()
        XCTAssertEqual(notFound.status, 404)
        XCTAssertTrue(notFound.endStream)
        XCTAssertFalse(notFound.body.isEmpty)
        XCTAssertEqual(notFound.header("content-length"), [String(notFound.bodyBytes)])
        XCTAssertNil(notFound.reset)

        let post = try await client.request("/prices", method: "POST").waitForEnd()
        XCTAssertEqual(post.status, 405)
        XCTAssertEqual(post.header("allow"), ["GET, HEAD, OPTIONS"])
        XCTAssertEqual(post.header("content-length"), [String(post.bodyBytes)])

        let delete = try await client.request("/prices", method: "DELETE").waitForEnd()
        XCTAssertEqual(delete.status, 405)
        XCTAssertEqual(delete.header("allow"), ["GET, HEAD, OPTIONS"])

        let head = try await client.request("/prices", method: "HEAD").waitForEnd()
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("content-type"), ["text/event-stream; charset=utf-8"])
        XCTAssertEqual(head.header("cache-control"), ["no-cache, no-transform"])
        XCTAssertEqual(head.header("content-length"), [], "a stream has no length, so HEAD has none either")
        XCTAssertEqual(head.header("connection"), [])
        XCTAssertTrue(head.endStream, "HEAD ends with the HEADERS frame")
        XCTAssertEqual(head.bodyBytes, 0, "HEAD has no body")

        // HEAD of a 404: no body, and a Content-Length (if any) that is the GET's (RFC 9110 §8.6).
        let headNotFound = try await client.request("/nope", method: "HEAD").waitForEnd()
        XCTAssertEqual(headNotFound.status, 404)
        XCTAssertEqual(headNotFound.bodyBytes, 0)
        XCTAssertTrue(
            headNotFound.header("content-length").allSatisfy { $0 == String(notFound.bodyBytes) },
            "\(headNotFound.header("content-length"))"
        )

        let preflight = try await client.request(
            "/prices",
            method: "OPTIONS",
            headers: [
                ("origin", "https://app.example"), ("access-control-request-method", "GET"),
                ("access-control-request-headers", "last-event-id"),
            ]
        ).waitForEnd()
        XCTAssertEqual(preflight.status, 204)
        XCTAssertEqual(preflight.header("access-control-allow-origin"), ["https://app.example"])
        XCTAssertTrue(preflight.header("access-control-allow-headers").joined().lowercased().contains("last-event-id"))
        XCTAssertEqual(preflight.header("content-length"), [], "no Content-Length in a 204")
        XCTAssertEqual(preflight.bodyBytes, 0)

        let denied = try await client.request(
            "/prices",
            method: "OPTIONS",
            headers: [("origin", "https://evil.example")]
        ).waitForEnd()
        XCTAssertEqual(denied.header("access-control-allow-origin"), [])

        // None of it subscribed anyone, and the connection serves a stream afterwards.
        let clients = try await harness.metrics().connectedClients
        XCTAssertEqual(clients, 0)
        let stream = try await client.request("/prices")
        self.assertStreamHeaders(try await stream.waitForHeaders())
        try await harness.waitUntilJoined(1)
        harness.origin.publish(data: "after the answers")
        let events = try await stream.waitForEvents(1)
        XCTAssertEqual(events.map(\.data), ["after the answers"])
        XCTAssertFalse(client.isClosed)
        await client.close()
    }

    func testResumeAndGzipOverHTTP2() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let client = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        let first = try await client.request("/prices")
        _ = try await first.waitForHeaders()
        try await harness.waitUntilJoined(1)
        for index in 1...3 { harness.origin.publish(data: "event \(index)") }
        _ = try await first.waitForEvents(3)

        // Last-Event-ID (a regular header, lower case on HTTP/2) resumes after event 1.
        let resumed = try await client.request("/prices", headers: [("last-event-id", "1")])
        self.assertStreamHeaders(try await resumed.waitForHeaders())
        let replayed = try await resumed.waitForEvents(2)
        XCTAssertEqual(replayed.map(\.data), ["event 2", "event 3"])
        // The query parameter form too.
        let byQuery = try await client.request("/prices?lastEventId=2")
        let fromQuery = try await byQuery.waitForEvents(1)
        XCTAssertEqual(fromQuery.map(\.data), ["event 3"])

        // A client that accepts gzip gets a gzip stream, announced in the headers.
        let gzip = try await client.request("/prices", headers: [("accept-encoding", "gzip")])
        let gzipHead = try await gzip.waitForHeaders()
        XCTAssertEqual(gzipHead.status, 200)
        XCTAssertEqual(gzipHead.header("content-encoding"), ["gzip"])
        XCTAssertEqual(gzipHead.header("content-length"), [])
        try await harness.waitUntilJoined(4)
        harness.origin.publish(data: "event 4")
        let live = try await resumed.waitForEvents(3)
        XCTAssertEqual(live.last?.data, "event 4")
        let gzipBytes = try await gzip.wait("gzip data") { $0.bodyBytes >= 10 }
        XCTAssertEqual(Array(gzipBytes.rawPrefix.prefix(2)), [0x1F, 0x8B], "gzip magic")
        await client.close()
    }

    // MARK: Limits

    func testMaxStreamsPerConnectionIsAdvertisedAndEnforced() async throws {
        let harness = try await Harness.start(
            configure: { $0.limits.maxStreamsPerConnection = 2 },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices")]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        let client = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        let advertised = try await client.remoteSetting(.maxConcurrentStreams)
        XCTAssertEqual(advertised, 2, "SETTINGS_MAX_CONCURRENT_STREAMS")

        let first = try await client.request("/prices")
        let second = try await client.request("/prices")
        _ = try await first.waitForHeaders()
        _ = try await second.waitForHeaders()
        try await harness.waitUntilJoined(2)
        // The client honours the setting and holds the third stream back until a slot frees.
        let third = try await client.request("/prices", waitUntilSent: false)
        try await Task.sleep(nanoseconds: 200_000_000)
        XCTAssertNil(third.snapshot.headers, "a third concurrent stream must not be served")
        let clients = try await harness.metrics().connectedClients
        XCTAssertEqual(clients, 2)
        await first.cancel()
        let thirdHeaders = try await third.waitForHeaders()
        XCTAssertEqual(thirdHeaders.status, 200)
        try await harness.waitUntilJoined(2)
        await client.close()
    }

    func testStreamOverMaxStreamsIsRefusedByTheServer() async throws {
        // A client that ignores SETTINGS_MAX_CONCURRENT_STREAMS: raw frames, three HEADERS at once.
        let harness = try await Harness.start(
            configure: { $0.limits.maxStreamsPerConnection = 2 },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices")]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        let connection = try await H2RawConnection.connect(port: harness.port, group: harness.clientGroup)
        self.addTeardownBlock { await connection.close() }
        // The limit is in force once the client has acknowledged the server's SETTINGS (RFC 9113 §6.5.3).
        try await connection.wait("the server's SETTINGS") { frames in
            frames.contains { $0.type == H2RawConnection.Frame.settings && $0.flags & 0x1 == 0 }
        }
        for streamID: UInt32 in [1, 3, 5] {
            connection.sendHeaders(
                streamID: streamID,
                [(":method", "GET"), (":scheme", "http"), (":path", "/prices"), (":authority", "127.0.0.1")]
            )
        }
        connection.flush()
        // RFC 9113 §5.1.2 asks for a stream error (REFUSED_STREAM or PROTOCOL_ERROR), which leaves streams 1
        // and 3 alone. SwiftNIO's HTTP/2 answers with a connection error instead, GOAWAY(PROTOCOL_ERROR),
        // after which the connection must end (the gateway closes it). Either way stream 5 is not served.
        typealias Frame = H2RawConnection.Frame
        let frames = try await connection.wait("stream 5 refused (RST_STREAM or GOAWAY)") { frames in
            frames.contains { ($0.streamID == 5 && $0.type == Frame.rstStream) || $0.type == Frame.goAway }
        }
        XCTAssertFalse(
            frames.contains { $0.streamID == 5 && ($0.type == Frame.headers || $0.type == Frame.data) },
            "stream 5 was served"
        )
        if let reset = frames.first(where: { $0.streamID == 5 && $0.type == Frame.rstStream }) {
            XCTAssertEqual(reset.errorCode, 0x7, "REFUSED_STREAM")
            try await connection.wait("responses on streams 1 and 3") { frames in
                [1, 3].allSatisfy { id in frames.contains { $0.streamID == id && $0.type == Frame.headers } }
            }
            try await harness.waitUntilJoined(2)
            XCTAssertFalse(connection.isClosed, "a refused stream leaves the connection open")
        } else {
            let goAway = try XCTUnwrap(frames.first { $0.type == Frame.goAway })
            XCTAssertNotEqual(goAway.errorCode, 0, "a GOAWAY for a protocol violation carries an error code")
            // The server ends a connection it sent an error GOAWAY on, and frees the streams' client slots.
            try await eventually("connection closed after the connection error", timeout: .seconds(2)) {
                connection.isClosed
            }
            try await eventually("client slots freed") { try await harness.metrics().connectedClients == 0 }
        }
    }

    func testEachHTTP2StreamCountsAgainstMaxClients() async throws {
        let harness = try await Harness.start(
            configure: { $0.limits.maxClients = 2 },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices")]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        let client = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        let first = try await client.request("/prices")
        let second = try await client.request("/prices")
        let firstStatus = try await first.waitForHeaders().status
        let secondStatus = try await second.waitForHeaders().status
        XCTAssertEqual(firstStatus, 200)
        XCTAssertEqual(secondStatus, 200)
        let third = try await client.request("/prices").waitForEnd()
        XCTAssertEqual(third.status, 503)
        let retryAfter = third.header("retry-after")
        XCTAssertEqual(retryAfter.count, 1)
        XCTAssertGreaterThanOrEqual(
            Int(retryAfter.first ?? "") ?? 0,
            1,
            "Retry-After must be a positive number of seconds"
        )
        XCTAssertNotEqual(third.header("content-type").first?.hasPrefix("text/event-stream"), true)
        XCTAssertEqual(third.header("content-length"), [String(third.bodyBytes)])
        // An HTTP/1.1 client is over the limit as well: the slots are shared across protocols.
        let http1 = try await harness.client("/prices")
        let http1Status = try await http1.waitForHead().status
        XCTAssertEqual(http1Status, .serviceUnavailable)
        await http1.close()
        XCTAssertFalse(client.isClosed, "503 on one stream leaves the connection open")

        // A cancelled stream frees its slot.
        await first.cancel()
        try await eventually("slot freed") { try await harness.metrics().connectedClients == 1 }
        let fourth = try await client.request("/prices")
        let fourthStatus = try await fourth.waitForHeaders().status
        XCTAssertEqual(fourthStatus, 200)
        await client.close()
        try await eventually("closing the connection frees every slot") {
            try await harness.metrics().connectedClients == 0
        }
    }

    // MARK: Idle connections

    func testIdleH2CConnectionIsClosedAfterHeaderTimeoutButNotWhileStreaming() async throws {
        let harness = try await Harness.start(
            configure: { $0.limits.headerTimeout = .milliseconds(300) },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices")]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        // Preface and SETTINGS, then no stream: closed (with GOAWAY) after the header timeout.
        let idle = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        try await eventually("idle connection closed", timeout: .seconds(3)) { idle.isClosed }
        XCTAssertEqual(idle.snapshot.goAway, .noError)

        // A connection with a stream is not idle, however long the stream stays quiet.
        let busy = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        let stream = try await busy.request("/prices")
        _ = try await stream.waitForHeaders()
        try await Task.sleep(nanoseconds: 900_000_000)
        XCTAssertFalse(busy.isClosed)
        try await harness.waitUntilJoined(1)
        harness.origin.publish(data: "still here")
        let events = try await stream.waitForEvents(1)
        XCTAssertEqual(events.map(\.data), ["still here"])
        // Once its last stream ends, the connection is idle again.
        await stream.cancel()
        try await eventually("connection closed after its last stream", timeout: .seconds(3)) { busy.isClosed }
    }

    // MARK: curl

    func testCurlHTTP2PriorKnowledgeAndHTTP2OverTLS() async throws {
        let curl = try Curl.locate()
        let certificates = try TestCertificates.make(keyType: .ecdsa)
        let harness = try await Harness.start(
            configure: { config in
                config.listen.append(TLSTestConfig.listener(certificates))
            },
            feeds: { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        )
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let tlsPort = harness.gateway.listenerAddresses[1].port!

        let h2c = try Curl.start(
            curl,
            [
                "--http2-prior-knowledge", "-N", "-s", "--max-time", "2", "-w", "\n%{http_version}\n",
                "http://127.0.0.1:\(harness.port)/prices",
            ]
        )
        let h2 = try Curl.start(
            curl,
            [
                "--http2", "--cacert", certificates.caCertificate, "-N", "-s", "--max-time", "2", "-w",
                "\n%{http_version}\n",
                "https://127.0.0.1:\(tlsPort)/prices",
            ]
        )
        try await harness.waitUntilJoined(2)
        for index in 1...3 { harness.origin.publish(data: "curl \(index)") }
        let (h2cOutput, _) = try await h2c.finish()
        let (h2Output, _) = try await h2.finish()
        for (label, output) in [("h2c", h2cOutput), ("h2 over TLS", h2Output)] {
            XCTAssertTrue(output.hasPrefix("retry: "), "\(label): \(output)")
            for index in 1...3 {
                XCTAssertTrue(output.contains("data: curl \(index)\n"), "\(label) misses event \(index): \(output)")
            }
            XCTAssertTrue(output.hasSuffix("\n2\n"), "\(label) did not speak HTTP/2: \(output.suffix(20))")
        }
    }
}

/// Runs the curl command line tool.
enum Curl {
    struct Running {
        let process: Process
        let output: Pipe

        /// Waits for the process to end; returns its standard output and exit status.
        func finish() async throws -> (String, Int32) {
            while self.process.isRunning { try await Task.sleep(nanoseconds: 20_000_000) }
            let data = self.output.fileHandleForReading.readDataToEndOfFile()
            return (String(decoding: data, as: UTF8.self), self.process.terminationStatus)
        }
    }

    static func locate() throws -> String {
        try ExternalTool.curl.require()
    }

    static func start(_ curl: String, _ arguments: [String]) throws -> Running {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: curl)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        return Running(process: process, output: output)
    }
}
