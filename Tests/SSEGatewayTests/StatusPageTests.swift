import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// The admin status page (`/`), its live feed (`/api/status/stream`) and `/api/feeds`.
final class StatusPageTests: XCTestCase {
    /// One `/api/status/stream` event, as far as these tests read it.
    struct Status: Decodable {
        struct Totals: Decodable {
            var eventsIn: Int
            var deliveries: Int
            var bytesOut: Int
        }
        struct Rates: Decodable {
            var eventsIn: Double?
            var deliveries: Double?
            var bytesOut: Double?
        }
        struct Feed: Decodable {
            var path: String
            var name: String
            var upstreamState: String
            var upstreamUrl: String
            var lastEventId: String
            var clients: Int
            var eventsIn: Int
            var eventsPerS: Double?
            var replayEvents: Int
            var replayMaxEvents: Int?
        }
        struct Definition: Decodable {
            var name: String
            var deliveries: Int
            var deliveriesPerS: Double?
        }
        var intervalS: Double?
        var connectedClients: Int
        var totals: Totals
        var rates: Rates
        var feeds: [Feed]
        var definitions: [Definition]
    }

    static func decode(_ events: [ServerSentEvent]) throws -> [Status] {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try events.compactMap { $0.data }.map { try decoder.decode(Status.self, from: Data($0.utf8)) }
    }

    static func httpBody(_ response: String) -> (head: String, body: String) {
        guard let split = response.range(of: "\r\n\r\n") else { return (response, "") }
        return (String(response[..<split.lowerBound]), String(response[split.upperBound...]))
    }

    // (a) The page is one self-contained document: nothing loaded from anywhere, not even this host.
    func testStatusPageIsSelfContainedAndFollowsTheAdminStream() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        let (response, _) = try await rawExchange(
            port: harness.adminPort,
            "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        let (head, page) = Self.httpBody(response)
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 200 OK"), head)
        XCTAssertTrue(head.lowercased().contains("content-type: text/html; charset=utf-8"), head)
        // The browser enforces the air gap too: no script, style, image or connection elsewhere.
        XCTAssertTrue(
            head.contains(
                "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"
            ),
            head
        )
        XCTAssertTrue(page.hasPrefix("<!doctype html>"), String(page.prefix(80)))
        XCTAssertTrue(page.contains("new EventSource('api/status/stream'"))
        for external in ["http://", "https://", "//cdn", "@import", "url(", "<iframe", "<img", "<object", "<embed"] {
            XCTAssertFalse(page.lowercased().contains(external), "the page refers to \(external)")
        }
        let attributes = try NSRegularExpression(
            pattern: #"\b(src|href)\s*=\s*["']?([^"'\s>]*)"#,
            options: [.caseInsensitive]
        )
        let references = attributes.matches(in: page, range: NSRange(page.startIndex..., in: page)).map { match in
            String(page[Range(match.range(at: 2), in: page)!])
        }
        XCTAssertEqual(references, ["data:,"], "only the empty inline favicon may be referenced")
        XCTAssertFalse(page.contains("<script src"), "scripts are inline")

        let (headResponse, _) = try await rawExchange(
            port: harness.adminPort,
            "HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        XCTAssertTrue(headResponse.hasPrefix("HTTP/1.1 200 OK"))
        XCTAssertTrue(Self.httpBody(headResponse).body.isEmpty)
    }

    // (b) The stream: SSE headers, `retry:` first, one JSON sample per interval, rates that are the
    // difference of successive totals, no credential anywhere, and a timer that dies with the connection.
    func testStatusStreamReportsRatesFromSuccessiveSnapshotsAndStopsWithTheConnection() async throws {
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "http://ops:hunter2@\(origin.dropFirst("http://".count))/prices")
                {
                    $0.settings.upstream.headers = [HeaderField(name: "Authorization", value: "Bearer s3cr3t-token")]
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let admin = try await TestSSEClient.connect(
            port: harness.adminPort,
            path: "/api/status/stream?interval_ms=100",
            group: harness.clientGroup
        )
        let head = try await admin.waitForHead()
        XCTAssertEqual(head.status, .ok)
        XCTAssertEqual(head.headers["Content-Type"].first, "text/event-stream; charset=utf-8")
        XCTAssertEqual(head.headers["Cache-Control"].first, "no-cache, no-transform")
        XCTAssertEqual(head.headers["X-Accel-Buffering"].first, "no")
        XCTAssertEqual(metricsStreams(harness), 1)
        _ = try await admin.waitForEvents(1)
        XCTAssertTrue(admin.body.hasPrefix("retry: 2000\n\n"), String(admin.body.prefix(40)))
        let first = try XCTUnwrap(Self.decode(admin.events).first)
        XCTAssertNil(first.intervalS, "the first sample has nothing to take a rate against")
        XCTAssertNil(first.rates.eventsIn)
        XCTAssertEqual(first.feeds.map(\.path), ["/prices"])
        XCTAssertEqual(first.feeds.first?.upstreamUrl, "\(harness.originURL)/prices", "no user info in the URL")
        XCTAssertEqual(first.feeds.first?.replayMaxEvents, 1000)

        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()
        for round in 1...6 {
            for _ in 0..<5 { harness.origin.publish(data: "tick \(round)") }
            try await Task.sleep(nanoseconds: 120_000_000)
        }
        _ = try await client.waitForEvents(30)
        let samples = try await admin.wait("a sample with all 30 events delivered") { snapshot in
            ((try? Self.decode(snapshot.events)) ?? []).contains {
                $0.totals.eventsIn >= 30 && $0.totals.deliveries >= 30
            }
        }
        let statuses = try Self.decode(samples.events)
        let last = try XCTUnwrap(statuses.last)
        XCTAssertEqual(last.connectedClients, 1)
        XCTAssertEqual(last.feeds.first?.clients, 1)
        XCTAssertEqual(last.feeds.first?.eventsIn, 30)
        XCTAssertEqual(last.feeds.first?.lastEventId, client.events.last?.id)
        XCTAssertEqual(last.definitions.first?.deliveries, 30)
        XCTAssertTrue(
            statuses.contains { ($0.rates.eventsIn ?? 0) > 0 && ($0.rates.deliveries ?? 0) > 0 },
            "events flowed while sampling"
        )
        // Every rate is the difference of two successive totals over the measured interval.
        for (before, after) in zip(statuses, statuses.dropFirst()) {
            let interval = try XCTUnwrap(after.intervalS)
            XCTAssertGreaterThan(interval, 0.05)
            let expected = Double(after.totals.eventsIn - before.totals.eventsIn) / interval
            XCTAssertEqual(try XCTUnwrap(after.rates.eventsIn), expected, accuracy: 0.02 + expected * 0.01)
            let perFeed = Double(after.feeds[0].eventsIn - before.feeds[0].eventsIn) / interval
            XCTAssertEqual(try XCTUnwrap(after.feeds[0].eventsPerS), perFeed, accuracy: 0.02 + perFeed * 0.01)
        }

        // `/api/feeds` carries the same feed, rates from the listener's own 1 s sampler, no credential.
        var feedsJSON = ""
        try await eventually("/api/feeds has rates", timeout: .seconds(5)) {
            let (response, _) = try await rawExchange(
                port: harness.adminPort,
                "GET /api/feeds HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                group: harness.clientGroup
            )
            feedsJSON = Self.httpBody(response).body
            return !feedsJSON.contains("\"rate_interval_s\":null")
        }
        let feeds = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(feedsJSON.utf8)) as? [String: Any])
        let feed = try XCTUnwrap((feeds["feeds"] as? [[String: Any]])?.first)
        XCTAssertEqual(feed["upstream_url"] as? String, "\(harness.originURL)/prices")
        XCTAssertEqual(feed["replay_max_events"] as? Int, 1000)
        XCTAssertNotNil(feed["events_per_s"] as? Double)
        XCTAssertNotNil(feed["definition_deliveries_per_s"] as? Double)
        for text in [admin.body, feedsJSON] {
            XCTAssertFalse(
                text.contains("hunter2") || text.contains("ops:") || text.contains("s3cr3t")
                    || text.contains("Authorization")
            )
        }

        // Closing the page stops its timer.
        await admin.close()
        try await eventually("the stream's timer stopped") { self.metricsStreams(harness) == 0 }
        // And closing the admin listener ends the streams that are still open.
        let second = try await TestSSEClient.connect(
            port: harness.adminPort,
            path: "/api/status/stream?interval_ms=100",
            group: harness.clientGroup
        )
        _ = try await second.waitForEvents(1)
        XCTAssertEqual(metricsStreams(harness), 1)
        await harness.admin.stop()
        try await second.waitForClose(timeout: .seconds(3))
        try await eventually("the second stream's timer stopped") { self.metricsStreams(harness) == 0 }
        await client.close()
    }

    func metricsStreams(_ harness: Harness) -> Int {
        harness.gateway.metrics.statusStreams.load(ordering: .relaxed)
    }

    // The sampler's arithmetic on hand-made snapshots: rates, reset counters, new feeds, idle time.
    func testSamplerRatesComeFromTheDifferenceOfTotals() {
        func snapshot(_ feeds: [(String, Int)], deliveries: Int) -> GatewayMetrics.Snapshot {
            var snapshot = GatewayMetrics.Snapshot()
            snapshot.feeds = feeds.map { path, events in
                FeedStatus(
                    path: path,
                    definition: "d",
                    upstreamURL: "http://x/",
                    upstreamState: .streaming,
                    lastEventID: "",
                    replayEvents: 0,
                    replayBytes: 0,
                    eventsIn: events,
                    replaysServed: 0,
                    replayGaps: 0,
                    upstreamReconnects: 0,
                    upstreamFailures: 0,
                    retired: false
                )
            }
            snapshot.delivery["d"] = DeliveryStats(clients: 1, deliveries: deliveries, bytesOut: deliveries * 10)
            return snapshot
        }
        var sampler = StatusSampler()
        let t0 = NIODeadline.now()
        let s0 = sampler.sample(snapshot([("/a", 10)], deliveries: 100), now: t0)
        XCTAssertNil(s0.interval)
        XCTAssertNil(s0.totalEventsPerSecond)
        XCTAssertNil(s0.idleSeconds["/a"], "no move seen yet")
        let s1 = sampler.sample(snapshot([("/a", 30), ("/b", 4)], deliveries: 160), now: t0 + .seconds(2))
        XCTAssertEqual(s1.interval, 2)
        XCTAssertEqual(s1.eventsPerSecond["/a"], 10)
        XCTAssertEqual(s1.eventsPerSecond["/b"], 2, "a feed that opened in the interval counts from zero")
        XCTAssertEqual(s1.totalEventsPerSecond, 12)
        XCTAssertEqual(s1.deliveriesPerSecond["d"], 30)
        XCTAssertEqual(s1.bytesPerSecond["d"], 300)
        XCTAssertEqual(s1.idleSeconds["/a"], 0)
        let s2 = sampler.sample(snapshot([("/a", 30), ("/b", 1)], deliveries: 10), now: t0 + .seconds(3))
        XCTAssertEqual(s2.eventsPerSecond["/a"], 0)
        XCTAssertEqual(s2.eventsPerSecond["/b"], 0, "a counter that went back is no negative rate")
        XCTAssertEqual(s2.deliveriesPerSecond["d"], 0)
        XCTAssertEqual(s2.idleSeconds["/a"], 1)
        let s3 = sampler.sample(snapshot([("/b", 1)], deliveries: 10), now: t0 + .milliseconds(3500))
        XCTAssertNil(s3.idleSeconds["/a"], "a closed feed is forgotten")
        XCTAssertEqual(s3.idleSeconds["/b"], 1.5, "/b last moved (it opened) in the sample at 2 s")
    }

    // (c) A real browser: headless Chromium opens the page from the admin port and the DOM follows the
    // gateway live (read in real time over the DevTools protocol), then shows the loss of the stream.
    func testChromiumShowsTheFeedAndLiveCounts() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()
        let publisher = Task {
            while !Task.isCancelled {
                harness.origin.publish(data: "tick")
                try? await Task.sleep(nanoseconds: 40_000_000)
            }
        }
        defer { publisher.cancel() }

        let browser = try await DevToolsBrowser.open(
            url: "http://127.0.0.1:\(harness.adminPort)/?interval_ms=200",
            group: harness.clientGroup
        )
        defer { browser.close() }
        struct Page: Decodable {
            struct Row: Decodable {
                var state: String
                var url: String
                var clients: String
                var rate: String
                var replay: String
            }
            var state: String
            var samples: Int
            var first: Int
            var events: Int
            var total: String
            var clients: String
            var row: Row?
        }
        let probe = """
            JSON.stringify((() => {
              const d = document.body.dataset, $ = (s) => document.querySelector(s);
              const tr = $('tr[data-path="/prices"]');
              return {state: d.state, samples: +d.samples, first: +(d.firstEventsIn || -1), events: +(d.eventsIn || -1),
                total: $('#t-events').textContent, clients: $('#t-clients').textContent,
                row: tr && {state: tr.querySelector('.badge').textContent, url: tr.querySelector('.url').textContent,
                  clients: tr.querySelector('.c-clients').textContent, rate: tr.querySelector('.c-events-rate').textContent,
                  replay: tr.querySelector('.c-replay').textContent}};
            })())
            """
        func read() async throws -> Page {
            try JSONDecoder().decode(Page.self, from: Data(try await browser.evaluate(probe).utf8))
        }
        // The total of events in, as the DOM showed it at each read: it must change in place.
        var seen: [String] = []
        var page = try await read()
        seen.append(page.total)
        let deadline = NIODeadline.now() + .seconds(15)
        while !(page.state == "live" && page.samples >= 4 && page.events > page.first
            && seen.filter { $0 != "—" }.count >= 2
            && page.row.map { $0.rate != "—" && $0.rate != "0" } == true)
        {
            if NIODeadline.now() > deadline {
                XCTFail("the page did not go live: \(page), totals seen: \(seen)")
                return
            }
            try await Task.sleep(nanoseconds: 100_000_000)
            page = try await read()
            if seen.last != page.total { seen.append(page.total) }
        }
        XCTAssertEqual(page.total, String(page.events), "the DOM shows the number the stream sent")
        XCTAssertEqual(page.clients, "1")
        let row = try XCTUnwrap(page.row)
        XCTAssertEqual(row.state, "streaming")
        XCTAssertEqual(row.url, "\(harness.originURL)/prices")
        XCTAssertEqual(row.clients, "1")
        XCTAssertTrue(row.replay.hasSuffix("B") && row.replay.contains(" / 1,000 · "), row.replay)

        // The admin listener goes away: the page says so instead of showing stale numbers as live.
        await harness.admin.stop()
        try await eventually("the page shows the disconnect", timeout: .seconds(5)) {
            try await read().state == "disconnected"
        }
        await client.close()
    }
}

/// Headless Chromium driven over the DevTools protocol (one WebSocket on 127.0.0.1): it opens a URL and
/// the test evaluates JavaScript in the live page, in real time. (`--dump-dom` cannot do this: it dumps
/// at the load event, and `--virtual-time-budget` never elapses while an EventSource is open.)
final class DevToolsBrowser: @unchecked Sendable {
    private let process: Process
    private let profile: URL
    private let channel: Channel
    private let inbox: NIOLockedValueBox<ByteBuffer>
    private var nextID = 0

    private init(process: Process, profile: URL, channel: Channel, inbox: NIOLockedValueBox<ByteBuffer>) {
        self.process = process
        self.profile = profile
        self.channel = channel
        self.inbox = inbox
    }

    static func open(url: String, group: EventLoopGroup) async throws -> DevToolsBrowser {
        let chromium = try ExternalTool.chromium.require()
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ssegate-chromium-\(UUID().uuidString)"
        )
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        process.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--hide-scrollbars",
            "--user-data-dir=\(profile.path)", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
            "--window-size=1280,800", url,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        func abandon() {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            try? FileManager.default.removeItem(at: profile)
        }
        do {
            // Chromium writes the port it picked to DevToolsActivePort in the profile.
            var port: Int?
            try await eventually("Chromium's DevTools port", timeout: .seconds(20)) {
                let file = profile.appendingPathComponent("DevToolsActivePort")
                port = (try? String(contentsOf: file, encoding: .utf8)).flatMap {
                    $0.split(separator: "\n").first.flatMap { Int($0) }
                }
                return port != nil
            }
            var target: String?
            try await eventually("the page's DevTools target", timeout: .seconds(10)) {
                let (response, _) = try await rawExchange(
                    port: port!,
                    "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                    group: group,
                    timeout: .seconds(2)
                )
                let body = StatusPageTests.httpBody(response).body
                let targets = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [[String: Any]] ?? []
                target =
                    targets.first { $0["type"] as? String == "page" && ($0["url"] as? String ?? "").hasPrefix(url) }?[
                        "webSocketDebuggerUrl"
                    ] as? String
                return target != nil
            }
            let path = try XCTUnwrap(target.flatMap { URL(string: $0) }.map { $0.path })
            let inbox = NIOLockedValueBox(ByteBuffer())
            final class Collector: ChannelInboundHandler, @unchecked Sendable {
                typealias InboundIn = ByteBuffer
                let inbox: NIOLockedValueBox<ByteBuffer>
                init(_ inbox: NIOLockedValueBox<ByteBuffer>) { self.inbox = inbox }
                func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                    var buffer = self.unwrapInboundIn(data)
                    self.inbox.withLockedValue { _ = $0.writeBuffer(&buffer) }
                }
            }
            let channel = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(Collector(inbox))
                    }
                }
                .connect(host: "127.0.0.1", port: port!).get()
            let upgrade =
                "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port!)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            try await channel.writeAndFlush(ByteBuffer(string: upgrade)).get()
            try await eventually("the DevTools WebSocket handshake", timeout: .seconds(5)) {
                inbox.withLockedValue { String(buffer: $0).contains("\r\n\r\n") }
            }
            let status = inbox.withLockedValue { buffer -> String in
                let text = String(buffer: buffer)
                let head = text.components(separatedBy: "\r\n\r\n")[0]
                buffer.moveReaderIndex(forwardBy: head.utf8.count + 4)
                buffer.discardReadBytes()
                return head
            }
            guard status.hasPrefix("HTTP/1.1 101") else {
                XCTFail("DevTools refused the WebSocket: \(status)")
                throw TestTimeout(message: "websocket")
            }
            return DevToolsBrowser(process: process, profile: profile, channel: channel, inbox: inbox)
        } catch {
            abandon()
            throw error
        }
    }

    /// Evaluates `expression` (which must produce a string) in the page and returns its value.
    func evaluate(_ expression: String, timeout: TimeAmount = .seconds(5)) async throws -> String {
        self.nextID += 1
        let id = self.nextID
        let message = try JSONSerialization.data(
            withJSONObject: [
                "id": id, "method": "Runtime.evaluate", "params": ["expression": expression, "returnByValue": true],
            ] as [String: Any]
        )
        // A client frame: FIN + text, masked (an all-zero key leaves the payload as it is).
        var frame = ByteBuffer()
        frame.writeInteger(UInt8(0x81))
        if message.count < 126 {
            frame.writeInteger(UInt8(0x80 | message.count))
        } else if message.count < 65536 {
            frame.writeInteger(UInt8(0x80 | 126))
            frame.writeInteger(UInt16(message.count))
        } else {
            frame.writeInteger(UInt8(0x80 | 127))
            frame.writeInteger(UInt64(message.count))
        }
        frame.writeInteger(UInt32(0))
        frame.writeBytes(message)
        try await self.channel.writeAndFlush(frame).get()
        let deadline = NIODeadline.now() + timeout
        while NIODeadline.now() < deadline {
            while let payload = self.inbox.withLockedValue({ buffer -> Data? in Self.takeFrame(&buffer) }) {
                guard let reply = (try? JSONSerialization.jsonObject(with: payload)) as? [String: Any],
                    reply["id"] as? Int == id
                else { continue }
                let result = (reply["result"] as? [String: Any])?["result"] as? [String: Any]
                guard let value = result?["value"] as? String else {
                    XCTFail("evaluation failed: \(reply)")
                    throw TestTimeout(message: "evaluate")
                }
                return value
            }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        throw TestTimeout(message: "no DevTools reply to \(id)")
    }

    /// One whole unmasked server frame's payload off the front of `buffer`, if it has arrived.
    private static func takeFrame(_ buffer: inout ByteBuffer) -> Data? {
        var peek = buffer
        guard let _ = peek.readInteger(as: UInt8.self), let second = peek.readInteger(as: UInt8.self) else {
            return nil
        }
        var length = Int(second & 0x7F)
        if length == 126 {
            guard let extended = peek.readInteger(as: UInt16.self) else { return nil }
            length = Int(extended)
        } else if length == 127 {
            guard let extended = peek.readInteger(as: UInt64.self) else { return nil }
            length = Int(extended)
        }
        guard let payload = peek.readBytes(length: length) else { return nil }
        buffer = peek
        buffer.discardReadBytes()
        return Data(payload)
    }

    func close() {
        self.channel.close(promise: nil)
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: self.profile)
    }
}
