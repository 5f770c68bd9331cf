import Foundation
import NIOCore
import SSEOrigin
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// What a real browser's EventSource fires through the gateway: headless Chromium on 127.0.0.1.
final class BrowserEventSourceTests: XCTestCase {
    func testChromiumFiresExactlyTheUpstreamEventsAndResumesAfterADisconnect() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.retry = .milliseconds(200)
                    $0.settings.cors.allowOrigins = ["*"]
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let page = """
            <!doctype html><meta charset="utf-8"><title>ssegate</title><script>
            const got = [];
            const post = (kind, value) => fetch('/report', {method: 'POST', body: JSON.stringify({kind, value})});
            const es = new EventSource('http://127.0.0.1:\(harness.port)/prices');
            es.onopen = () => post('open', got.length);
            const record = (e) => {
              got.push({type: e.type, id: e.lastEventId, data: e.data});
              if (got.length === 6) { es.close(); post('events', got); }
            };
            es.onmessage = record;
            es.addEventListener('tick', record);
            </script>
            """
        let browser = BrowserHarness(page: page, group: harness.clientGroup)
        try await browser.start()
        self.addTeardownBlock { await browser.stop() }
        try await eventually("the browser connected", timeout: .seconds(30)) { browser.received.count == 1 }

        harness.origin.broadcast(ByteBuffer(string: "id: 1\ndata: one\n\n"))
        harness.origin.broadcast(ByteBuffer(string: "id: 2\nevent: tick\ndata: two\ndata: lines\n\n"))
        harness.origin.broadcast(
            ByteBuffer(string: ": an upstream comment\n\nid: 3\n\ndata: after the id-only block\n\n")
        )
        harness.origin.broadcast(ByteBuffer(string: "id: 4\ndata: four\n\n"))
        try await eventually("gateway has id 4") {
            try await harness.metrics().feeds.first?.lastEventID == "4"
        }
        try await Task.sleep(nanoseconds: 200_000_000)  // let the browser take them in
        // Cut every client stream: the browser reconnects by itself with Last-Event-ID: 4.
        for hub in harness.gateway.context.allHubs {
            try await hub.loop.submit { hub.closeAllClients() }.get()
        }
        harness.origin.broadcast(ByteBuffer(string: "id: 5\ndata: five, sent while the browser was away\n\n"))
        try await eventually("the browser reconnected", timeout: .seconds(10)) { browser.received.count >= 2 }
        harness.origin.broadcast(ByteBuffer(string: "id: 6\ndata: six\n\n"))
        try await eventually("the browser reported its events", timeout: .seconds(10)) {
            browser.received.contains { $0.contains("\"kind\":\"events\"") }
        }
        let report = try XCTUnwrap(browser.received.first { $0.contains("\"kind\":\"events\"") })
        struct Report: Decodable {
            struct Event: Decodable, Equatable {
                var type: String
                var id: String
                var data: String
            }
            var value: [Event]
        }
        let events = try JSONDecoder().decode(Report.self, from: Data(report.utf8)).value
        XCTAssertEqual(
            events,
            [
                .init(type: "message", id: "1", data: "one"),
                .init(type: "tick", id: "2", data: "two\nlines"),
                .init(type: "message", id: "3", data: "after the id-only block"),
                .init(type: "message", id: "4", data: "four"),
                .init(type: "message", id: "5", data: "five, sent while the browser was away"),
                .init(type: "message", id: "6", data: "six"),
            ]
        )
    }

    /// Chromium sends `Accept-Encoding: gzip` on every EventSource request: a burst of 200 short events
    /// written upstream in one piece, then silence, must all fire at once (the tail of a compressed burst
    /// once waited inside the compressor for the next upstream event).
    func testChromiumFiresEveryEventOfABurstWithoutWaitingForTheNext() async throws {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices") { $0.settings.cors.allowOrigins = ["*"] }]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let total = 200
        let page = """
            <!doctype html><meta charset="utf-8"><title>ssegate</title><script>
            let count = 0;
            const post = (kind, value) => fetch('/report', {method: 'POST', body: JSON.stringify({kind, value})});
            const es = new EventSource('http://127.0.0.1:\(harness.port)/prices');
            es.onopen = () => post('open', 0);
            es.onmessage = (e) => { count++; if (count === \(total)) post('all', e.lastEventId); };
            setInterval(() => post('count', count), 500);
            </script>
            """
        let browser = BrowserHarness(page: page, group: harness.clientGroup)
        try await browser.start()
        self.addTeardownBlock { await browser.stop() }
        try await eventually("the browser connected", timeout: .seconds(30)) {
            browser.received.contains { $0.contains("\"open\"") }
        }
        try await harness.waitUntilJoined(1)
        harness.origin.broadcast(Self.burst(of: total))
        try await Self.waitUntilAllFired(total, in: browser, timeout: .seconds(3))
        XCTAssertFalse(browser.received.contains { $0.contains("\"kind\":\"error\"") })
    }

    /// Over HTTPS Chromium speaks HTTP/2 (ALPN), so its EventSource is a stream whose DATA frames go straight
    /// into the connection's HTTP/2 handler (`HTTP2DataWriter`): a burst of 1,000 events written upstream in
    /// one piece (about 100 KB compressed or not, past a stream's 64 KiB watermark within one pass) must
    /// all fire at once, and the ticker after it too.
    func testChromiumOverHTTPSSpeaksHTTP2AndFiresEveryEventOfABurst() async throws {
        let certificates = try TestCertificates.make()
        let harness = try await Harness.start(
            configure: { $0.listen.append(TLSTestConfig.listener(certificates)) },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices") { $0.settings.cors.allowOrigins = ["*"] }]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let tlsPort = harness.gateway.listenerAddresses[1].port!
        let total = 1_000
        let page = """
            <!doctype html><meta charset="utf-8"><title>ssegate</title><script>
            let count = 0;
            const post = (kind, value) => fetch('/report', {method: 'POST', body: JSON.stringify({kind, value})});
            const es = new EventSource('https://localhost:\(tlsPort)/prices');
            es.onopen = () => post('open', 0);
            es.onerror = () => post('error', es.readyState);
            es.onmessage = (e) => { count++; if (count === \(total)) post('all', e.lastEventId); };
            setInterval(() => post('count', count), 500);
            </script>
            """
        let browser = BrowserHarness(
            page: page,
            group: harness.clientGroup,
            chromiumArguments: ["--ignore-certificate-errors"]
        )
        try await browser.start()
        self.addTeardownBlock { await browser.stop() }
        try await eventually("the browser connected", timeout: .seconds(30)) {
            browser.received.contains { $0.contains("\"open\"") }
        }
        try await harness.waitUntilJoined(1)
        XCTAssertGreaterThanOrEqual(LiveObjects.http2Streams.value, 1, "Chromium's EventSource is an HTTP/2 stream")
        harness.origin.broadcast(Self.burst(of: total))
        try await Self.waitUntilAllFired(total, in: browser, timeout: .seconds(5))
        XCTAssertFalse(browser.received.contains { $0.contains("\"kind\":\"error\"") }, "\(browser.received.suffix(3))")
        let clients = try await harness.metrics().clientsPerFeed["/prices"]
        XCTAssertEqual(clients, 1, "still streaming: not evicted")
    }

    /// Poll mode with no change on the page but the URL: Chromium's own EventSource reconnects after each
    /// finite response with `Last-Event-ID` and fires every event of a 5 events/s feed, in order, without
    /// a gap or a duplicate.
    func testChromiumInPollModeFiresEveryEventInOrder() async throws {
        var options = OriginServer.Options()
        options.rate = 5
        let harness = try await Harness.start(origin: options) { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.cors.allowOrigins = ["*"]
                    $0.settings.poll.timeout = .seconds(2)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let page = """
            <!doctype html><meta charset="utf-8"><title>ssegate</title><script>
            const got = [];
            let responses = 0;
            const post = (kind, value) => fetch('/report', {method: 'POST', body: JSON.stringify({kind, value})});
            const es = new EventSource('http://127.0.0.1:\(harness.port)/prices?transport=poll');
            es.onopen = () => { if (responses++ === 0) post('open', 0); };
            es.onmessage = (e) => got.push(e.lastEventId);
            setTimeout(() => { es.close(); post('events', {ids: got, responses}); }, 5000);
            </script>
            """
        let browser = BrowserHarness(page: page, group: harness.clientGroup)
        try await browser.start()
        self.addTeardownBlock { await browser.stop() }
        try await eventually("the browser reported its events", timeout: .seconds(40)) {
            browser.received.contains { $0.contains("\"kind\":\"events\"") }
        }
        let report = try XCTUnwrap(browser.received.first { $0.contains("\"kind\":\"events\"") })
        struct Report: Decodable {
            struct Value: Decodable {
                var ids: [String]
                var responses: Int
            }
            var value: Value
        }
        let value = try JSONDecoder().decode(Report.self, from: Data(report.utf8)).value
        let ids = value.ids.compactMap { Int($0) }
        XCTAssertEqual(ids.count, value.ids.count, "every event carries its numeric id")
        XCTAssertGreaterThanOrEqual(ids.count, 15, "about 5 s of a 5 events/s feed: \(ids)")
        if let first = ids.first {
            XCTAssertEqual(ids, Array(first..<(first + ids.count)), "in order, no gap, no duplicate")
        }
        XCTAssertGreaterThanOrEqual(value.responses, 5, "finite responses, each followed by a reconnect")
    }

    /// `total` short events (ids 1…total) in one buffer, for the origin to write in one piece.
    private static func burst(of total: Int) -> ByteBuffer {
        var burst = ByteBuffer()
        for index in 1...total {
            burst.writeString(
                "id: \(index)\ndata: {\"seq\":\(index),\"symbol\":\"ACME\",\"price\":\(100 + index % 7).25,\"note\":\"burst\"}\n\n"
            )
        }
        return burst
    }

    /// Until the page reported (`all`) that its EventSource fired the `total`-th event.
    private static func waitUntilAllFired(_ total: Int, in browser: BrowserHarness, timeout: TimeAmount) async throws {
        try await eventually("the browser fired all \(total) events", timeout: timeout) {
            browser.received.contains { $0.contains("\"kind\":\"all\"") && $0.contains("\"value\":\"\(total)\"") }
        }
    }
}
