import Foundation
import NIOCore
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// An upstream URL as shown (no credentials, no query values) and as sent (percent-decoded Basic
/// credentials): unit checks of `UpstreamURL`, and the admin JSON, status stream and origin seen end to end.
final class UpstreamURLTests: XCTestCase {
    func testDescriptionHidesQueryValuesButKeepsNames() throws {
        let cases: [(String, String)] = [
            ("http://up/stream?api_key=X", "http://up/stream?api_key=***"),
            ("https://u:p@up:8443/s?a=1&b=two&c=", "https://up:8443/s?a=***&b=***&c="),
            ("http://up/s?token", "http://up/s?***"),
            ("http://up/s?a=1&&b=%2Fx", "http://up/s?a=***&&b=***"),
            ("http://up/r/{room}?room={room}&key=k", "http://up/r/{room}?room={room}&key=***"),
            ("http://up?k=v", "http://up/?k=***"),
            ("http://up/no/query", "http://up/no/query"),
        ]
        for (written, shown) in cases {
            let url = try UpstreamURL(parsing: written)
            XCTAssertEqual(url.description, shown, written)
            XCTAssertEqual("\(url)", shown, "interpolation (logs) is the description")
        }
        // The request itself still carries the values.
        let url = try UpstreamURL(parsing: "http://up/stream?api_key=X&room={room}")
        XCTAssertEqual(url.target, "/stream?api_key=X&room={room}")
        let filled = url.filled(with: ["room": "lobby"])
        XCTAssertEqual(filled.target, "/stream?api_key=X&room=lobby")
        XCTAssertEqual(filled.description, "http://up/stream?api_key=***&room=***", "a filled-in value is a value")
    }

    func testAPlaceholderInTheHostIsRefused() {
        // Only the target is filled in per feed: the host would reach DNS with its braces.
        for written in ["http://{region}.internal/stream", "https://up-{region}:8443/s", "http://u:p@{host}/s"] {
            XCTAssertThrowsError(try UpstreamURL(parsing: written), written) { error in
                XCTAssertTrue("\(error)".contains("not in its host"), "\(error)")
            }
        }
        ConfigFixtures.assertSingleError(
            """
            feeds:
              - path: /rooms/{room}
                upstream: { url: "http://{room}.chat.internal/events" }
            """,
            line: 3,
            column: 22,
            "feeds[0].upstream.url: a placeholder can only be in the URL's path or query, not in its host"
        )
    }

    func testBasicCredentialsArePercentDecoded() throws {
        let url = try UpstreamURL(parsing: "http://bob:Pa55w0rd%40x@up/stream")
        XCTAssertEqual(url.basicAuthorization, "Basic " + Data("bob:Pa55w0rd@x".utf8).base64EncodedString())
        let plain = try UpstreamURL(parsing: "http://ops:hunter2@up/")
        XCTAssertEqual(plain.basicAuthorization, "Basic " + Data("ops:hunter2".utf8).base64EncodedString())
        let encodedUser = try UpstreamURL(parsing: "http://a%20b%C3%A9:p%3Aq%25@up/")
        XCTAssertEqual(encodedUser.basicAuthorization, "Basic " + Data("a bé:p:q%".utf8).base64EncodedString())
        XCTAssertNil(try UpstreamURL(parsing: "http://up/").basicAuthorization)
        for bad in ["http://bob:50%@up/", "http://bob:5%zz@up/", "http://bob%4@up/"] {
            XCTAssertThrowsError(try UpstreamURL(parsing: bad), bad) { error in
                let message = (error as? PathTemplateError)?.message ?? ""
                XCTAssertTrue(message.contains("malformed %-escape"), message)
                XCTAssertFalse(message.contains("bob"), "the message does not echo credentials: \(message)")
            }
        }
        // A '/' in an unescaped password cuts the authority short; the error does not echo the password part.
        XCTAssertThrowsError(try UpstreamURL(parsing: "http://bob:pa/ss@up/")) { error in
            let message = (error as? PathTemplateError)?.message ?? ""
            XCTAssertFalse(message.contains("pa"), message)
        }
    }

    /// The origin receives the decoded password; `/api/feeds` and the status stream show neither the
    /// credentials nor the query's secret.
    func testAdminShowsNoQuerySecretAndOriginGetsDecodedCredentials() async throws {
        let log = LogRecorder()
        let harness = try await Harness.start(logger: log.logger()) { origin in
            let hostPort = origin.dropFirst("http://".count)
            return [
                try Harness.feed(
                    "/prices",
                    upstream: "http://bob:Pa55w0rd%40x@\(hostPort)/prices?api_key=SECRET123&v=2"
                )
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let request = try XCTUnwrap(harness.origin.requests.last)
        XCTAssertEqual(request.uri, "/prices?api_key=SECRET123&v=2", "the request carries the query unchanged")
        XCTAssertEqual(
            request.headers["Authorization"],
            ["Basic " + Data("bob:Pa55w0rd@x".utf8).base64EncodedString()],
            "user and password are percent-decoded before Basic encoding, as curl does"
        )

        let (response, _) = try await rawExchange(
            port: harness.adminPort,
            "GET /api/feeds HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        let feedsJSON = StatusPageTests.httpBody(response).body
        let feeds = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(feedsJSON.utf8)) as? [String: Any])
        let feed = try XCTUnwrap((feeds["feeds"] as? [[String: Any]])?.first)
        XCTAssertEqual(feed["upstream_url"] as? String, "\(harness.originURL)/prices?api_key=***&v=***")

        let admin = try await TestSSEClient.connect(
            port: harness.adminPort,
            path: "/api/status/stream?interval_ms=100",
            group: harness.clientGroup
        )
        _ = try await admin.waitForEvents(1)
        await admin.close()
        let first = try XCTUnwrap(StatusPageTests.decode(admin.events).first)
        XCTAssertEqual(first.feeds.first?.upstreamUrl, "\(harness.originURL)/prices?api_key=***&v=***")
        // The upstream's log lines name it, without the secret.
        harness.origin.closeStreams()
        try await eventually("upstream lost and connected again, logged") {
            log.recorded.filter { $0.message == "upstream connected" }.count >= 2
        }
        let logLines = log.recorded.map { "\($0.message) \($0.metadata)" }
        XCTAssertTrue(
            log.recorded.contains { $0.metadata["upstream"] == "\(harness.originURL)/prices?api_key=***&v=***" },
            "\(logLines)"
        )
        for text in [admin.body, feedsJSON] + logLines {
            XCTAssertFalse(text.contains("SECRET123") || text.contains("Pa55w0rd") || text.contains("bob"), text)
        }
    }
}
