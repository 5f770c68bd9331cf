import Foundation
import NIOCore
import NIOPosix
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// What a real browser's EventSource does against a feed with `auth: jwt` and the token in a cookie (headless
/// Chromium; skipped without it). The page is on another port of 127.0.0.1, so it opens the stream with
/// `withCredentials: true` and the feed allows that origin with credentials; the cookie is set with
/// `document.cookie` (cookies are per host, not per port). Tokens are signed when the page asks for them.
final class BrowserAuthTests: XCTestCase {
    private struct Report: Decodable {
        var kind: String
        var value: Value?

        enum Value: Decodable {
            case number(Int)
            case text(String)
            case events([Event])

            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let number = try? container.decode(Int.self) {
                    self = .number(number)
                } else if let text = try? container.decode(String.self) {
                    self = .text(text)
                } else {
                    self = .events(try container.decode([Event].self))
                }
            }
        }
    }

    private struct Event: Decodable, Equatable {
        var id: String
        var data: String
    }

    /// The page's script prefix: `url` (the gateway's `/prices`), `post(kind, value)` to report, and
    /// `token(seconds)` to get a token valid that long from the page server.
    private static let prelude = """
        <!doctype html><meta charset="utf-8"><title>ssegate auth</title><script>
        const url = 'http://127.0.0.1:' + new URLSearchParams(location.search).get('gateway') + '/prices';
        const post = (kind, value) => fetch('/report', {method: 'POST', body: JSON.stringify({kind, value})});
        const token = async (seconds) => (await fetch('/token?expires=' + seconds)).text();
        const setCookie = (value) => { document.cookie = 'access_token=' + value + '; path=/; SameSite=Lax'; };

        """

    private struct Setup {
        var harness: Harness
        var browser: BrowserHarness
    }

    /// A gateway whose `/prices` needs a JWT (HS256, cookie `access_token`, `warn_before` as given) and
    /// allows the page's origin with credentials, and the page, served and then opened.
    private func start(page script: String, warnBefore: TimeAmount = .seconds(30)) async throws -> Setup {
        let fixture = try AuthGateFixture()
        let group = MultiThreadedEventLoopGroup.singleton
        let browser = BrowserHarness(page: Self.prelude + script + "\n</script>", group: group) { target in
            guard target.hasPrefix("/token?expires="), let seconds = Double(target.dropFirst(15)) else { return nil }
            return try? await fixture.token(expiresIn: seconds)
        }
        let origin = try await browser.serve()
        self.addTeardownBlock { await browser.stop() }
        let pageOrigin = try OriginPattern(parsing: origin)
        let harness = try await Harness.start { upstream in
            [
                try Harness.feed("/prices", upstream: "\(upstream)/prices") {
                    $0.settings.retry = .milliseconds(200)
                    $0.settings.auth = fixture.auth(.jwt, warnBefore: warnBefore)
                    $0.settings.cors.allowOrigins = [pageOrigin]
                    $0.settings.cors.allowCredentials = true
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        try browser.open(query: "?gateway=\(harness.port)")
        return Setup(harness: harness, browser: browser)
    }

    private func reports(_ browser: BrowserHarness, _ kind: String) -> [Report] {
        browser.received.compactMap { try? JSONDecoder().decode(Report.self, from: Data($0.utf8)) }
            .filter { $0.kind == kind }
    }

    private func waitFor(
        _ browser: BrowserHarness,
        _ kind: String,
        timeout: TimeAmount = .seconds(5),
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> Report {
        try await eventually("the page reported '\(kind)'", timeout: timeout, file: file, line: line) {
            !self.reports(browser, kind).isEmpty
        }
        return self.reports(browser, kind)[0]
    }

    private func count(_ harness: Harness, _ outcome: String, _ reason: String) -> Int {
        harness.gateway.context.access.outcomes.snapshot[.init(feed: "/prices", outcome: outcome, reason: reason)] ?? 0
    }

    func testWithoutTheCookieEventSourceFailsForGoodAndWithItTheEventsArrive() async throws {
        let setup = try await self.start(page: Self.refusedThenCookie)
        let (harness, browser) = (setup.harness, setup.browser)
        let refused = try await self.waitFor(browser, "refused", timeout: .seconds(30))
        guard case .number(let state) = refused.value else { return XCTFail("\(refused)") }
        XCTAssertEqual(state, 2, "readyState CLOSED (2) at the error: a 401 is final, not a reconnect")
        XCTAssertEqual(self.count(harness, "refused", "missing"), 1)

        // The page waits 2 s (ten times the feed's retry) before it goes on: no retry may reach the gateway.
        let waited = try await self.waitFor(browser, "waited")
        guard case .number(let stateAfter) = waited.value else { return XCTFail("\(waited)") }
        XCTAssertEqual(stateAfter, 2)
        XCTAssertEqual(self.reports(browser, "refused").count, 1, "one error event, no retry loop")
        XCTAssertEqual(self.count(harness, "refused", "missing"), 1, "the gateway saw exactly one request")

        _ = try await self.waitFor(browser, "open")
        try await harness.waitUntilJoined(1)
        XCTAssertEqual(self.count(harness, "allowed", "credential"), 1, "the cookie was sent and accepted")
        _ = harness.origin.publish(data: "one")
        _ = harness.origin.publish(data: "two")
        let delivered = try await self.waitFor(browser, "events")
        guard case .events(let events) = delivered.value else { return XCTFail("\(delivered)") }
        XCTAssertEqual(events.map(\.data), ["one", "two"])
        XCTAssertTrue(self.reports(browser, "unexpected").isEmpty, "\(browser.received)")
    }

    private static let refusedThenCookie = """
        const anonymous = new EventSource(url, {withCredentials: true});
        anonymous.onmessage = () => post('unexpected', 'a message without a token');
        anonymous.onerror = () => {
          post('refused', anonymous.readyState);
          if (anonymous.readyState !== EventSource.CLOSED) return;
          setTimeout(async () => {
            post('waited', anonymous.readyState);
            setCookie(await token(300));
            const es = new EventSource(url, {withCredentials: true});
            const got = [];
            es.onopen = () => post('open', 0);
            es.onerror = () => post('unexpected', 'error with the cookie, readyState ' + es.readyState);
            es.onmessage = (e) => {
              got.push({id: e.lastEventId, data: e.data});
              if (got.length === 2) { es.close(); post('events', got); }
            };
          }, 2000);
        };
        """

    func testAnExpiringCookieIsRenewedOnAuthExpiringAndTheReconnectResumesWithoutAGap() async throws {
        let setup = try await self.start(page: Self.expiring, warnBefore: .seconds(2))
        let (harness, browser) = (setup.harness, setup.browser)
        _ = try await self.waitFor(browser, "open", timeout: .seconds(30))
        try await harness.waitUntilJoined(1)
        _ = harness.origin.publish(data: "one")
        _ = harness.origin.publish(data: "two")

        let expiring = try await self.waitFor(browser, "expiring", timeout: .seconds(4))
        guard case .text(let expiresAt) = expiring.value else { return XCTFail("\(expiring)") }
        XCTAssertTrue(expiresAt.hasPrefix("{\"expiresAt\":\""), expiresAt)

        let expired = try await self.waitFor(browser, "expired", timeout: .seconds(4))
        guard case .events(let seen) = expired.value, let notice = seen.first else { return XCTFail("\(expired)") }
        let lastID = try XCTUnwrap(seen.last?.id)
        XCTAssertEqual(seen.dropFirst().map(\.data), ["one", "two"], "what the page had when the stream ended")
        XCTAssertEqual(notice.data, "{\"lastEventId\":\"\(lastID)\"}", "auth-expired names the last id delivered")

        // Published while the browser reconnects with the cookie it renewed on auth-expiring.
        _ = harness.origin.publish(data: "three")
        let all = try await self.waitFor(browser, "all", timeout: .seconds(4))
        guard case .events(let events) = all.value else { return XCTFail("\(all)") }
        XCTAssertEqual(events.map(\.data), ["one", "two", "three"], "no gap, no duplicate")
        XCTAssertEqual(events[1].id, lastID)
        XCTAssertEqual(self.count(harness, "allowed", "credential"), 2, "the reconnect brought the renewed cookie")
        XCTAssertEqual(self.count(harness, "refused", "expired"), 0)
        XCTAssertTrue(self.reports(browser, "unexpected").isEmpty, "\(browser.received)")
    }

    private static let expiring = """
        (async () => {
          setCookie(await token(3));
          const es = new EventSource(url, {withCredentials: true});
          const got = [];
          es.onopen = () => post('open', got.length);
          es.onmessage = (e) => {
            got.push({id: e.lastEventId, data: e.data});
            if (got.length === 3) { es.close(); post('all', got); }
          };
          es.addEventListener('auth-expiring', async (e) => {
            post('expiring', e.data);
            setCookie(await token(300));
          });
          es.addEventListener('auth-expired', (e) => {
            post('expired', [{id: '', data: e.data}, ...got]);
          });
        })();
        """
}
