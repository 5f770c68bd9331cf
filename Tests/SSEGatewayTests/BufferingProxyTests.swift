import Foundation
import NIOCore
import SSEOrigin
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// What headless Chromium's EventSource fires through nginx configured like a proxy that buffers
/// (`proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;`): nothing for many seconds in stream
/// mode, every event in poll mode. The origin ticks at 5 events/s and puts its send time in each event.
///
/// Each test watches for `SSEGATE_PROXY_SOAK_SECONDS` (default a few seconds, to keep the suite short);
/// the figures in docs/proxies.md come from a run with 120. Each test prints one line of figures.
final class BufferingProxyTests: XCTestCase {
    static let rate = 5.0

    /// How long each test watches the browser.
    static func window(default seconds: Double) -> Double {
        ProcessInfo.processInfo.environment["SSEGATE_PROXY_SOAK_SECONDS"].flatMap(Double.init) ?? seconds
    }

    func testStreamModeThroughABufferingProxyFiresNothingForSeconds() async throws {
        let window = Self.window(default: 6)
        let run = try await ProxiedPage.start(query: "", test: self)
        // nginx holds even the response head (below its `postpone_output`), so the EventSource may not
        // open at all: time runs from its creation.
        let created = try await run.waitUntilCreated()
        let publishedBefore = try await run.lastPublished()
        try await Task.sleep(nanoseconds: UInt64(window * 1e9))
        let published = try await run.lastPublished() - publishedBefore
        let reports = try await run.reportsAfterTheNextPost()
        let events = reports.events
        let first = events.first.map { ($0.receivedMilliseconds - created) / 1000 }
        let opened = reports.firstOpen.map { String(format: "%.1f s", ($0 - created) / 1000) } ?? "never"
        print(
            "stream mode through buffering nginx: origin published \(published) events in \(Int(window)) s; "
                + "the browser fired \(events.count), the first "
                + (first.map { String(format: "%.1f s after the EventSource was created", $0) } ?? "never")
                + "; onopen after \(opened)"
        )
        XCTAssertGreaterThanOrEqual(Double(published), Self.rate * window * 0.5, "the origin kept publishing")
        // nginx holds the stream until its 4k first buffer fills: far more than the quiet span asserted.
        let quiet = min(window, 6)
        XCTAssertFalse(
            events.contains { $0.receivedMilliseconds - created < quiet * 1000 },
            "stream mode fired an event within \(quiet) s through a buffering proxy: \(events.prefix(3))"
        )
    }

    func testPollModeThroughABufferingProxyFiresEveryEventInOrderWithoutAGap() async throws {
        let window = Self.window(default: 8)
        let run = try await ProxiedPage.start(query: "?transport=poll", test: self)
        _ = try await run.waitUntilOpened()
        // The first poll (no resume id) has answered by now: the browser resumes from the id it carried,
        // at most the gateway's last id now, and must fire every event after it.
        let lastAtStart = try await run.lastPublished()
        try await Task.sleep(nanoseconds: UInt64(window * 1e9))
        let lastAtEnd = try await run.lastPublished()
        let reports = try await waitUntil(timeout: .seconds(5), interval: .milliseconds(50)) {
            run.reports
        } until: {
            ($0.events.last?.seq ?? 0) >= lastAtEnd
        }.value
        let seqs = reports.events.map(\.seq)
        let latencies = reports.events.map(\.latency).sorted()
        let median = latencies.isEmpty ? 0 : latencies[latencies.count / 2]
        let p99 = latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * 0.99))]
        print(
            "poll mode through buffering nginx: \(seqs.count) events in \(Int(window)) s (seq \(seqs.first ?? 0)-"
                + "\(seqs.last ?? 0)), \(reports.opens) polls; origin to onmessage: median "
                + String(format: "%.0f ms, p99 %.0f ms, max %.0f ms", median, p99, latencies.last ?? 0)
        )
        XCTAssertGreaterThanOrEqual(seqs.count, Int(BufferingProxyTests.rate * window * 0.8), run.proxyLogs)
        XCTAssertLessThanOrEqual(seqs.first ?? .max, lastAtStart + 1, "the first events were missed")
        XCTAssertGreaterThanOrEqual(seqs.last ?? 0, lastAtEnd, "the last events never came")
        XCTAssertEqual(
            seqs,
            Array((seqs.first ?? 0)..<((seqs.first ?? 0) + seqs.count)),
            "a gap, a duplicate or disorder"
        )
        XCTAssertGreaterThan(reports.opens, 2, "poll responses are finite: the browser reconnects after each")
        // A generous bound for a busy machine: buffered until a 4k buffer fills would take many seconds.
        XCTAssertLessThan(median, 2000, "poll mode delivers within a poll round trip, not when a buffer fills")
    }
}

/// A test page served through the buffering nginx (same origin as the feed) that opens
/// `EventSource('/prices' + query)` and POSTs what it saw every 250 ms: each message's `seq` and origin
/// send time (`ts`, µs) with the browser's receive time (`performance.timeOrigin + performance.now()`,
/// ms), and how many times the EventSource opened and erred (a poll-mode reconnect is one of each).
final class ProxiedPage: @unchecked Sendable {
    struct Event: Equatable {
        var seq: Int
        var sentMicroseconds: Double
        var receivedMilliseconds: Double
        /// Origin send to `onmessage`, in milliseconds (one machine, one clock).
        var latency: Double { self.receivedMilliseconds - self.sentMicroseconds / 1000 }
    }

    /// Everything the page has reported, in the order it posted it.
    struct Reports {
        var events: [Event] = []
        /// When the page created its EventSource (browser milliseconds).
        var created: Double?
        var firstOpen: Double?
        var opens = 0
        var errors = 0
        var posts = 0
    }

    private struct Post: Decodable {
        var n: Int
        var events: [[Double]]
        var created: Double
        var firstOpen: Double?
        var opens: Int
        var errors: Int
    }

    let harness: Harness
    let browser: BrowserHarness
    let nginx: BufferingNginx

    private init(harness: Harness, browser: BrowserHarness, nginx: BufferingNginx) {
        self.harness = harness
        self.browser = browser
        self.nginx = nginx
    }

    static func page(query: String) -> String {
        """
        <!doctype html><meta charset="utf-8"><title>ssegate behind a buffering proxy</title><script>
        const now = () => performance.timeOrigin + performance.now();
        let pending = [], n = 0, opens = 0, errors = 0, firstOpen = null;
        const created = now();
        const es = new EventSource('/prices\(query)');
        es.onopen = () => { opens++; if (firstOpen === null) firstOpen = now(); };
        es.onerror = () => { errors++; };
        es.onmessage = (e) => { const d = JSON.parse(e.data); pending.push([d.seq, d.ts, now()]); };
        setInterval(() => {
          const events = pending; pending = [];
          fetch('/report', {method: 'POST', body: JSON.stringify({n: n++, events, created, firstOpen, opens, errors})});
        }, 250);
        </script>
        """
    }

    /// An origin ticking at 5 events/s, the gateway, the page server and nginx in front of both, and
    /// Chromium on the page. Everything is stopped at the test's teardown.
    static func start(query: String, test: XCTestCase) async throws -> ProxiedPage {
        var options = OriginServer.Options()
        options.rate = BufferingProxyTests.rate
        let harness = try await Harness.start(origin: options) { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices")]
        }
        test.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let browser = BrowserHarness(page: Self.page(query: query), group: harness.clientGroup)
        test.addTeardownBlock { await browser.stop() }
        let pageOrigin = try await browser.serve()
        let pagePort = try XCTUnwrap(URL(string: pageOrigin)?.port)
        let nginx = try await BufferingNginx.start(
            routes: [.init(prefix: "/prices", port: harness.port), .init(prefix: "/", port: pagePort)],
            group: harness.clientGroup
        )
        test.addTeardownBlock { nginx.stop() }
        try browser.open(url: "http://127.0.0.1:\(nginx.port)/")
        return ProxiedPage(harness: harness, browser: browser, nginx: nginx)
    }

    /// Everything posted so far, merged in posting order.
    var reports: Reports {
        let decoder = JSONDecoder()
        let posts = self.browser.received.compactMap { try? decoder.decode(Post.self, from: Data($0.utf8)) }
            .sorted { $0.n < $1.n }
        var reports = Reports()
        for post in posts {
            reports.events += post.events.map {
                Event(seq: Int($0[0]), sentMicroseconds: $0[1], receivedMilliseconds: $0[2])
            }
            reports.created = reports.created ?? post.created
            reports.firstOpen = reports.firstOpen ?? post.firstOpen
            reports.opens = max(reports.opens, post.opens)
            reports.errors = max(reports.errors, post.errors)
        }
        reports.posts = posts.count
        return reports
    }

    /// Waits (Chromium starts slowly on a busy machine) until the page has posted once; returns when it
    /// created its EventSource, in the browser's milliseconds.
    func waitUntilCreated() async throws -> Double {
        try await eventually("the page ran through nginx", timeout: .seconds(30)) { self.reports.created != nil }
        return self.reports.created!
    }

    /// Waits until the EventSource has opened; returns when, in the browser's milliseconds.
    func waitUntilOpened() async throws -> Double {
        let opened = try await waitUntil(timeout: .seconds(30), interval: .milliseconds(20)) {
            self.reports.firstOpen != nil
        }
        guard opened, let firstOpen = self.reports.firstOpen else {
            XCTFail(
                "the page's EventSource never opened; the page posted \(self.browser.received.prefix(3)); nginx: \(self.proxyLogs)"
            )
            throw TestTimeout(message: "the page's EventSource never opened")
        }
        return firstOpen
    }

    /// The reports once the page has posted again (everything it saw until now is in them).
    func reportsAfterTheNextPost() async throws -> Reports {
        let posts = self.reports.posts
        try await eventually("the page posted again") { self.reports.posts > posts + 1 }
        return self.reports
    }

    /// The id of the last event the gateway has taken from the origin (its `seq`).
    func lastPublished() async throws -> Int {
        let id = try await self.harness.metrics().feeds.first { $0.path == "/prices" }?.lastEventID
        return Int(id ?? "") ?? 0
    }

    /// nginx's log, for a failure message.
    var proxyLogs: String { self.nginx.logs() }
}
