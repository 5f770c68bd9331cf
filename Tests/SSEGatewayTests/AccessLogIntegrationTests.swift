import Foundation
import NIOCore
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// The access log of a running gateway, read back from its file: one JSON line per request, with how each
/// ended — a client that closes, one evicted for its queue, one drained, a 401 whose token never reaches the
/// log, a poll, a multi-feed stream, router answers — and a reload reopening a file logrotate moved away.
final class AccessLogIntegrationTests: XCTestCase {
    private var logFile = ""

    private func start(
        configure: @escaping (inout GatewayConfig) -> Void = { _ in },
        feed configureFeed: @escaping (inout FeedConfig) -> Void = { _ in },
        more: @escaping (String) throws -> [FeedConfig] = { _ in [] }
    ) async throws -> Harness {
        self.logFile = try TestScratch.directory("access-log").appendingPathComponent("access.log").path
        let logFile = self.logFile
        let harness = try await Harness.start(
            configure: {
                $0.accessLog = .file(logFile)
                configure(&$0)
            },
            feeds: { origin in
                [
                    try Harness.feed("/prices", upstream: "\(origin)/prices", configure: configureFeed),
                    try Harness.feed("/news", upstream: "\(origin)/news"),
                ] + (try more(origin))
            }
        )
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstreams connected") { harness.origin.openConnections >= 2 }
        return harness
    }

    /// Every line of the log so far, each parsed as a JSON object (a line that is not fails the test).
    private func lines(_ path: String? = nil) throws -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: path ?? self.logFile, encoding: .utf8) else { return [] }
        XCTAssertTrue(text.isEmpty || text.hasSuffix("\n"), "whole lines only")
        return try text.split(separator: "\n").map { line in
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
        }
    }

    /// Waits for the one line that `matches`, and returns it.
    private func line(
        _ what: String,
        in path: String? = nil,
        file: StaticString = #filePath,
        line: UInt = #line,
        where matches: @escaping ([String: Any]) -> Bool
    ) async throws -> [String: Any] {
        try await eventually("access log line: \(what)", file: file, line: line) {
            try self.lines(path).contains(where: matches)
        }
        let found = try self.lines(path).filter(matches)
        XCTAssertEqual(found.count, 1, "exactly one line for \(what): \(found)", file: file, line: line)
        return found[0]
    }

    private func publish(_ harness: Harness, _ range: ClosedRange<Int>) async throws {
        for index in range { harness.origin.publish(data: "event \(index)") }
        try await eventually("gateway received \(range.upperBound)") {
            try await harness.metrics().feeds.first { $0.path == "/prices" }?.lastEventID == String(range.upperBound)
        }
    }

    func testAClientThatClosesGetsOneLineWithEveryField() async throws {
        let harness = try await self.start()
        try await self.publish(harness, 1...3)
        let client = try await harness.client(
            "/prices?event=message&lastEventId=x",
            headers: [("Last-Event-ID", "no-such-id")]
        )
        _ = try await client.waitForHead()
        try await harness.waitUntilJoined(1)
        harness.origin.publish(data: "event 4")
        _ = try await client.waitForEvents(4)
        let started = Date()
        await client.close()

        let entry = try await self.line("closed stream") { $0["end"] as? String == "client_closed" }
        XCTAssertEqual(entry["client"] as? String, "127.0.0.1")
        XCTAssertEqual(entry["method"] as? String, "GET")
        XCTAssertEqual(entry["path"] as? String, "/prices?event=message&lastEventId=x")
        XCTAssertEqual(entry["protocol"] as? String, "HTTP/1.1")
        XCTAssertEqual(entry["tls"] as? Bool, false)
        XCTAssertEqual(entry["kind"] as? String, "stream")
        XCTAssertEqual(entry["feed"] as? String, "/prices")
        XCTAssertEqual(entry["instance"] as? String, "/prices")
        XCTAssertEqual(entry["status"] as? Int, 200)
        XCTAssertEqual(entry["resume_id"] as? String, "no-such-id")
        XCTAssertEqual(entry["gap"] as? Bool, true)
        XCTAssertEqual(entry["events"] as? Int, 4, "3 replayed and 1 live")
        XCTAssertGreaterThan(entry["bytes"] as? Int ?? 0, client.body.utf8.count - 1)
        XCTAssertGreaterThanOrEqual(entry["duration_ms"] as? Int ?? -1, 0)
        XCTAssertTrue(entry["reason"] is NSNull)
        let time = try XCTUnwrap(entry["time"] as? String)
        XCTAssertTrue(time.hasSuffix("Z") && time.count == 24, time)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let logged = try XCTUnwrap(formatter.date(from: time))
        XCTAssertLessThan(abs(logged.timeIntervalSince(started)), 5)

        // Answers of the router get lines too.
        _ = try await rawExchange(
            port: harness.port,
            "GET /nope?access_token=abc HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        let notFound = try await self.line("404") { $0["status"] as? Int == 404 }
        XCTAssertEqual(notFound["end"] as? String, "refused")
        XCTAssertEqual(notFound["reason"] as? String, "not_found")
        XCTAssertEqual(notFound["kind"] as? String, "request")
        XCTAssertEqual(notFound["path"] as? String, "/nope?access_token=REDACTED")
    }

    func testAClientEvictedForItsQueue() async throws {
        let harness = try await self.start(feed: { $0.settings.client.maxQueue = 64 * 1024 })
        let stalled = try await harness.client("/prices", receiveBuffer: 4096, reading: false)
        try await harness.waitUntilJoined(1)
        // The kernel's socket buffers take a few MB first: publish until the queue is over its bound.
        let payload = String(repeating: "p", count: 8 * 1024)
        for index in 1...1000 {
            harness.origin.publish(data: "\(index) \(payload)")
            if index % 50 == 0 {
                if try await harness.metrics().delivery["/prices"]?.evictionsMaxQueue == 1 { break }
                try await Task.sleep(nanoseconds: 5_000_000)
            }
        }
        let entry = try await self.line("evicted") { $0["end"] as? String == "evicted_max_queue" }
        XCTAssertEqual(entry["status"] as? Int, 200)
        XCTAssertEqual(entry["kind"] as? String, "stream")
        XCTAssertGreaterThan(entry["events"] as? Int ?? 0, 0)
        XCTAssertGreaterThan(entry["bytes"] as? Int ?? 0, 0)
        await stalled.close()
    }

    func testADrainedClientAndTheLinesFlushedAtShutdown() async throws {
        let harness = try await self.start(configure: { $0.shutdownTimeout = .milliseconds(400) })
        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()
        try await harness.waitUntilJoined(1)
        try await harness.gateway.drainAndShutdown()
        // The shutdown stopped the writer after the last line: the file is complete now.
        let entries = try self.lines()
        XCTAssertEqual(entries.count, 1, "\(entries)")
        XCTAssertEqual(entries.first?["end"] as? String, "drained")
        XCTAssertEqual(entries.first?["status"] as? Int, 200)
        await client.close()
    }

    func testARefusedTokenIsLoggedWithItsReasonAndNeverItself() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start(feed: { $0.settings.auth = fixture.auth(.jwt, allowQueryToken: true) })
        let token = try await fixture.token(secret: String(repeating: "another-secret-", count: 4))
        let answer = try await rawExchange(
            port: harness.port,
            "GET /prices?access_token=\(token)&event=a HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer \(token)\r\n"
                + "Cookie: access_token=\(token)\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        XCTAssertTrue(answer.response.hasPrefix("HTTP/1.1 401"), answer.response)
        let entry = try await self.line("401") { $0["status"] as? Int == 401 }
        XCTAssertEqual(entry["end"] as? String, "auth_refused")
        XCTAssertEqual(entry["reason"] as? String, "bad_signature")
        XCTAssertEqual(entry["path"] as? String, "/prices?access_token=REDACTED&event=a")
        let text = try String(contentsOfFile: self.logFile, encoding: .utf8)
        for part in [token] + token.split(separator: ".").map(String.init) {
            XCTAssertFalse(text.contains(part), "the token (or a part of it) is in the log: \(text)")
        }
        XCTAssertFalse(text.lowercased().contains("bearer"), text)
        XCTAssertFalse(text.lowercased().contains("cookie"), text)
    }

    func testAPollAndAMultiFeedStreamGetTheirLines() async throws {
        let harness = try await self.start()
        try await self.publish(harness, 1...3)
        let poll = try await rawExchange(
            port: harness.port,
            "GET /prices?transport=poll HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 1\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        XCTAssertTrue(poll.response.hasPrefix("HTTP/1.1 200"), poll.response)
        let polled = try await self.line("poll") { $0["kind"] as? String == "poll" }
        XCTAssertEqual(polled["end"] as? String, "answered")
        XCTAssertEqual(polled["status"] as? Int, 200)
        XCTAssertEqual(polled["events"] as? Int, 2)
        XCTAssertEqual(polled["resume_id"] as? String, "1")
        XCTAssertEqual(polled["gap"] as? Bool, false)
        let body = try XCTUnwrap(poll.response.components(separatedBy: "\r\n\r\n").last)
        XCTAssertEqual(polled["bytes"] as? Int, body.utf8.count)

        let multi = try await harness.client("/multi?feed=/prices&feed=/news")
        _ = try await multi.waitForHead()
        try await harness.waitUntilJoined(1, path: "/news")
        await multi.close()
        let streamed = try await self.line("multi") { $0["kind"] as? String == "multi" }
        XCTAssertEqual(streamed["feeds"] as? [String], ["/prices", "/news"])
        XCTAssertEqual(streamed["end"] as? String, "client_closed")
        XCTAssertEqual(streamed["status"] as? Int, 200)
        XCTAssertTrue(streamed["feed"] is NSNull)
    }

    func testAReloadReopensTheFileThatLogrotateMoved() async throws {
        let harness = try await self.start()
        _ = try await rawExchange(
            port: harness.port,
            "OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        _ = try await self.line("first") { $0["method"] as? String == "OPTIONS" }
        let rotated = self.logFile + ".1"
        try FileManager.default.moveItem(atPath: self.logFile, toPath: rotated)
        let (_, errors) = await harness.gateway.reload(harness.gateway.config)
        XCTAssertEqual(errors, [])
        try await eventually("reopened") { FileManager.default.fileExists(atPath: self.logFile) }
        _ = try await rawExchange(
            port: harness.port,
            "HEAD /prices HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        let head = try await self.line("after the reopen") { $0["method"] as? String == "HEAD" }
        XCTAssertEqual(head["end"] as? String, "answered")
        XCTAssertEqual(try self.lines(rotated).count, 1, "the rotated file keeps only what came before")
    }

    func testAnHTTP2StreamAndAnOversizedHead() async throws {
        let harness = try await self.start()
        let h2 = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup, tls: nil)
        let stream = try await h2.request("/prices")
        _ = try await stream.waitForHeaders()
        try await harness.waitUntilJoined(1)
        // A browser leaving a page resets its stream (RST_STREAM) and keeps the connection: the client
        // closed it, not an error.
        await stream.cancel()
        let entry = try await self.line("h2c stream") { $0["protocol"] as? String == "HTTP/2" }
        XCTAssertEqual(entry["tls"] as? Bool, false, "h2c")
        XCTAssertEqual(entry["end"] as? String, "client_closed", "\(entry)")
        XCTAssertEqual(entry["kind"] as? String, "stream")
        await h2.close()

        let huge = String(repeating: "h", count: 64 * 1024)
        _ = try await rawExchange(
            port: harness.port,
            "GET /prices HTTP/1.1\r\nHost: a\r\nX-Big: \(huge)\r\n\r\n",
            group: harness.clientGroup
        )
        let refused = try await self.line("431") { $0["status"] as? Int == 431 }
        XCTAssertEqual(refused["reason"] as? String, "header_too_large")
        XCTAssertEqual(refused["end"] as? String, "refused")
        XCTAssertTrue(refused["method"] is NSNull)
        XCTAssertTrue(refused["path"] is NSNull)
    }

    func testExpiryReloadRemovalAndAnUpstream404EndWithTheirReasons() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start(more: { origin in
            [
                try Harness.feed("/secure", upstream: "\(origin)/secure") {
                    $0.settings.auth = fixture.auth(.jwt, warnBefore: .zero)
                },
                try Harness.feed("/rooms/{room}", upstream: "\(origin)/rooms/{room}", connect: .onDemand),
            ]
        })
        harness.origin.behaviourForPath = { $0.hasPrefix("/rooms/ghost") ? .status(404) : nil }
        let token = try await fixture.token(feeds: ["/secure"], expiresIn: 1)
        let secure = try await harness.client("/secure", headers: [("Authorization", "Bearer \(token)")])
        let news = try await harness.client("/news")
        _ = try await secure.waitForHead()
        _ = try await news.waitForHead()
        try await harness.waitUntilJoined(1, path: "/news")

        // A reload without /news ends its stream.
        var config = harness.gateway.config
        config.feeds.removeAll { $0.name == "/news" }
        _ = await harness.gateway.reload(config)
        let removed = try await self.line("feed removed") { $0["end"] as? String == "feed_removed" }
        XCTAssertEqual(removed["feed"] as? String, "/news")

        let expired = try await self.line("expired") { $0["end"] as? String == "auth_expired" }
        XCTAssertEqual(expired["feed"] as? String, "/secure")
        XCTAssertEqual(expired["status"] as? Int, 200)

        let ghost = try await rawExchange(
            port: harness.port,
            "GET /rooms/ghost-1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        XCTAssertTrue(ghost.response.hasPrefix("HTTP/1.1 404"), ghost.response)
        let refused = try await self.line("upstream 404") { $0["end"] as? String == "upstream_refused" }
        XCTAssertEqual(refused["status"] as? Int, 404)
        XCTAssertEqual(refused["reason"] as? String, "upstream_404")
        XCTAssertEqual(refused["feed"] as? String, "/rooms/{room}")
        XCTAssertEqual(refused["instance"] as? String, "/rooms/ghost-1")
        await secure.close()
        await news.close()
    }
}
