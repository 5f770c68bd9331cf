import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// The downstream HTTP contract (SPEC §3): statuses, headers, keep-alive, CORS, limits, malformed input,
/// HTTP/1.0 framing. Requests are written as raw bytes so that every byte the gateway sends is checked.
final class HTTPSemanticsTests: XCTestCase {
    // MARK: Routing and methods

    func testUnknownPathIs404AndConnectionStaysUsable() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }

        try await connection.send("GET /nope HTTP/1.1\r\nHost: gw\r\n\r\n")
        let first = try await connection.waitForResponses(1)[0]
        XCTAssertEqual(first.status, 404)
        XCTAssertEqual(first.header("Content-Length"), [String(first.body.utf8.count)])
        XCTAssertTrue(
            first.header("Connection").allSatisfy { $0.lowercased() != "close" },
            "404 must not close a keep-alive connection"
        )
        XCTAssertTrue(first.header("Content-Type").isEmpty == false)

        // Keep-alive: a second request on the same connection is answered as well.
        try await connection.send("GET /prices/extra HTTP/1.1\r\nHost: gw\r\n\r\n")
        let responses = try await connection.waitForResponses(2)
        XCTAssertEqual(responses[1].status, 404)
        XCTAssertFalse(connection.isClosed)

        // And a third one can still be a stream.
        try await connection.send("GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        try await connection.wait("stream head after two 404s") { text, _ in text.contains("text/event-stream") }
        XCTAssertTrue(connection.text.components(separatedBy: "HTTP/1.1 200 OK").count == 2)
    }

    func testPostIs405WithAllow() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await connection.send("POST /prices HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello")
        let response = try await connection.waitForResponses(1)[0]
        XCTAssertEqual(response.status, 405)
        XCTAssertEqual(response.header("Allow"), ["GET, HEAD, OPTIONS"])
        // The request body was skipped, the connection is still usable.
        try await connection.send("DELETE /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        let responses = try await connection.waitForResponses(2)
        XCTAssertEqual(responses[1].status, 405)
        XCTAssertEqual(responses[1].header("Allow"), ["GET, HEAD, OPTIONS"])
    }

    func testHeadOnFeedAnswersStreamHeadersWithoutBody() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await connection.send("HEAD /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        let response = try await connection.waitForResponses(1, headOnly: true)[0]
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.header("Content-Type"), ["text/event-stream; charset=utf-8"])
        XCTAssertEqual(response.header("Cache-Control"), ["no-cache, no-transform"])
        XCTAssertEqual(response.header("X-Accel-Buffering"), ["no"])
        XCTAssertEqual(response.header("Content-Length"), [], "a stream has no Content-Length, so HEAD has none either")

        // Events published now must not turn into a body for the HEAD request.
        harness.origin.publish(data: "not for HEAD")
        try await Task.sleep(nanoseconds: 200_000_000)
        XCTAssertFalse(connection.text.contains("retry:"), "HEAD got a body: \(connection.text)")
        XCTAssertFalse(connection.text.contains("not for HEAD"))
        XCTAssertTrue(connection.text.hasSuffix("\r\n\r\n"), "bytes after the HEAD response head: \(connection.text)")

        // Still a usable keep-alive connection.
        try await connection.send("HEAD /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        let both = try await connection.waitForResponses(2, headOnly: true)
        XCTAssertEqual(both[1].status, 200)
        let clients = try await harness.joinedClients()
        XCTAssertEqual(clients, 0, "HEAD must not subscribe")
    }

    func testQueryParametersStillRoute() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let client = try await harness.client("/prices?x=1&y=two")
        let head = try await client.waitForHead()
        XCTAssertEqual(head.status, .ok)
        XCTAssertEqual(head.headers["Content-Type"], ["text/event-stream; charset=utf-8"])
        try await eventually("client joined") { try await harness.joinedClients() == 1 }
        harness.origin.publish(data: "with query")
        let events = try await client.waitForEvents(1)
        XCTAssertEqual(events.map(\.data), ["with query"])
        let notFound = try await rawExchange(
            port: harness.port,
            "GET /other?x=1 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        XCTAssertTrue(notFound.response.hasPrefix("HTTP/1.1 404"), notFound.response)
        await client.close()
    }

    // MARK: CORS

    func testPreflightWithAllowedOrigin() async throws {
        let harness = try await Self.corsHarness()
        self.addTeardownBlock { await harness.stop() }
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await connection.send(
            """
            OPTIONS /open HTTP/1.1\r
            Host: gw\r
            Origin: https://app.example\r
            Access-Control-Request-Method: GET\r
            Access-Control-Request-Headers: last-event-id, cache-control\r
            \r

            """
        )
        let response = try await connection.waitForResponses(1, headOnly: true)[0]
        XCTAssertEqual(response.status, 204)
        XCTAssertEqual(response.header("Access-Control-Allow-Origin"), ["https://app.example"])
        let methods = response.header("Access-Control-Allow-Methods").joined(separator: ",")
        XCTAssertTrue(methods.contains("GET"), methods)
        let allowHeaders = response.header("Access-Control-Allow-Headers").joined(separator: ",").lowercased()
        XCTAssertTrue(allowHeaders.contains("last-event-id"), allowHeaders)
        XCTAssertTrue(allowHeaders.contains("cache-control"), allowHeaders)
        XCTAssertTrue(
            response.header("Vary").joined(separator: ",").contains("Origin"),
            "a per-origin answer must say Vary: Origin"
        )
        // RFC 9110 §8.6: no Content-Length in a 204.
        XCTAssertEqual(response.header("Content-Length"), [], "204 must not carry Content-Length")
        XCTAssertEqual(response.body, "")
        // The connection is still usable after the preflight.
        try await connection.send("OPTIONS /open HTTP/1.1\r\nHost: gw\r\nOrigin: https://app.example\r\n\r\n")
        let both = try await connection.waitForResponses(2, headOnly: true)
        XCTAssertEqual(both[1].status, 204)
    }

    func testPreflightWithDisallowedOriginOrDefaultConfigHasNoAllowOrigin() async throws {
        let harness = try await Self.corsHarness()
        self.addTeardownBlock { await harness.stop() }
        let cases: [(path: String, origin: String)] = [
            ("/open", "https://evil.example"),
            ("/open", "https://app.example.evil"),
            ("/closed", "https://app.example"),
        ]
        for item in cases {
            let result = try await rawExchange(
                port: harness.port,
                """
                OPTIONS \(item.path) HTTP/1.1\r
                Host: gw\r
                Origin: \(item.origin)\r
                Access-Control-Request-Method: GET\r
                Access-Control-Request-Headers: last-event-id\r
                Connection: close\r
                \r

                """,
                group: harness.clientGroup
            )
            let response = try XCTUnwrap(
                RawConnection.parseResponses(result.response, headOnly: true).first,
                result.response
            )
            XCTAssertTrue([200, 204, 403].contains(response.status), "\(item): \(response.status)")
            XCTAssertEqual(response.header("Access-Control-Allow-Origin"), [], "\(item) must not be allowed")
            XCTAssertEqual(response.header("Access-Control-Allow-Credentials"), [], "\(item)")
        }
    }

    func testGetWithAllowedOriginGetsAllowOriginAndOthersDoNot() async throws {
        let harness = try await Self.corsHarness()
        self.addTeardownBlock { await harness.stop() }
        let allowed = try await harness.client("/open", headers: [("Origin", "https://app.example")])
        let allowedHead = try await allowed.waitForHead()
        XCTAssertEqual(allowedHead.status, .ok)
        XCTAssertEqual(allowedHead.headers["Access-Control-Allow-Origin"], ["https://app.example"])

        let denied = try await harness.client("/open", headers: [("Origin", "https://evil.example")])
        let deniedHead = try await denied.waitForHead()
        XCTAssertEqual(deniedHead.status, .ok)
        XCTAssertEqual(deniedHead.headers["Access-Control-Allow-Origin"], [])

        let closed = try await harness.client("/closed", headers: [("Origin", "https://app.example")])
        let closedHead = try await closed.waitForHead()
        XCTAssertEqual(closedHead.status, .ok)
        XCTAssertEqual(closedHead.headers["Access-Control-Allow-Origin"], [])
        for client in [allowed, denied, closed] { await client.close() }
    }

    // MARK: Limits

    func testMaxClientsGives503WithRetryAfterAndFreesSlots() async throws {
        let harness = try await Harness.start(
            configure: { $0.limits.maxClients = 2 },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices")]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        let first = try await harness.client("/prices")
        let second = try await harness.client("/prices")
        let firstHead = try await first.waitForHead()
        let secondHead = try await second.waitForHead()
        XCTAssertEqual(firstHead.status, .ok)
        XCTAssertEqual(secondHead.status, .ok)

        let third = try await harness.client("/prices")
        let thirdHead = try await third.waitForHead()
        XCTAssertEqual(thirdHead.status, .serviceUnavailable)
        let retryAfter = thirdHead.headers["Retry-After"]
        XCTAssertEqual(retryAfter.count, 1)
        XCTAssertGreaterThanOrEqual(
            Int(retryAfter.first ?? "") ?? 0,
            1,
            "Retry-After must be a positive number of seconds"
        )
        XCTAssertTrue(thirdHead.headers["Content-Type"].first?.hasPrefix("text/event-stream") != true)
        try await third.waitForClose(timeout: .seconds(2))
        // HEAD is not a client and is answered even at the limit.
        let head = try await rawExchange(
            port: harness.port,
            "HEAD /prices HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        XCTAssertTrue(head.response.hasPrefix("HTTP/1.1 200"), head.response)

        // One leaves: a new client is admitted.
        await first.close()
        var admitted: TestSSEClient?
        let deadline = NIODeadline.now() + .seconds(5)
        while admitted == nil, NIODeadline.now() < deadline {
            let candidate = try await harness.client("/prices")
            if try await candidate.waitForHead().status == .ok {
                admitted = candidate
            } else {
                await candidate.close()
                try await Task.sleep(nanoseconds: 20_000_000)
            }
        }
        let fourth = try XCTUnwrap(admitted, "no client admitted after one of two left")
        try await eventually("two clients joined") { try await harness.joinedClients() == 2 }
        harness.origin.publish(data: "after the slot freed")
        let events = try await fourth.waitForEvents(1)
        XCTAssertEqual(events.last?.data, "after the slot freed")

        // Slots are still exact: the refused clients did not leak or free one.
        let fifth = try await harness.client("/prices")
        let fifthHead = try await fifth.waitForHead()
        XCTAssertEqual(fifthHead.status, .serviceUnavailable)
        XCTAssertFalse(second.isClosed)
        for client in [second, third, fourth, fifth] { await client.close() }
    }

    func testTemplateMaxFeedsGives503ForAnotherValue() async throws {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/rooms/{room}", upstream: "\(origin)/rooms/{room}") { $0.maxFeeds = 1 }]
        }
        self.addTeardownBlock { await harness.stop() }
        let lobby = try await harness.client("/rooms/lobby")
        let lobbyHead = try await lobby.waitForHead()
        XCTAssertEqual(lobbyHead.status, .ok)

        let other = try await harness.client("/rooms/other")
        let otherHead = try await other.waitForHead()
        XCTAssertEqual(otherHead.status, .serviceUnavailable)
        XCTAssertEqual(otherHead.headers["Retry-After"].count, 1)
        XCTAssertGreaterThanOrEqual(Int(otherHead.headers["Retry-After"].first ?? "") ?? 0, 1)

        // The value already open is still served.
        let lobbyAgain = try await harness.client("/rooms/lobby")
        let againHead = try await lobbyAgain.waitForHead()
        XCTAssertEqual(againHead.status, .ok)
        try await eventually("upstream for the one room") { harness.origin.openConnections == 1 }
        XCTAssertEqual(harness.origin.requests.map(\.uri), ["/rooms/lobby"])
        for client in [lobby, other, lobbyAgain] { await client.close() }
    }

    // MARK: Malformed and hostile requests

    func testMalformedRequestLineIs400AndCloses() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        let garbage = try await rawExchange(port: harness.port, "GARBAGE\r\n\r\n", group: harness.clientGroup)
        XCTAssertTrue(garbage.response.hasPrefix("HTTP/1.1 400"), garbage.response)
        XCTAssertTrue(garbage.closedByServer, "the server must close after a 400")
        let parsed = RawConnection.parseResponses(garbage.response)
        XCTAssertEqual(parsed.count, 1)
        XCTAssertEqual(parsed.first?.header("Connection"), ["close"])

        let badHeader = try await rawExchange(
            port: harness.port,
            "GET /prices HTTP/1.1\r\nHost: gw\r\nNo colon here\r\n\r\n",
            group: harness.clientGroup
        )
        XCTAssertTrue(badHeader.response.hasPrefix("HTTP/1.1 400"), badHeader.response)
        XCTAssertTrue(badHeader.closedByServer)
        XCTAssertFalse(badHeader.response.contains("text/event-stream"))
    }

    /// RFC 9112 §3.2: HTTP/1.1 without `Host`, or any request with two, is a 400 (and the connection closes);
    /// HTTP/1.0 without `Host` is still served.
    func testMissingOrRepeatedHostIs400() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        let requests = [
            "GET /prices HTTP/1.1\r\n\r\n",
            "GET /prices HTTP/1.1\r\nHost: gw\r\nHost: other\r\n\r\n",
            "GET /prices HTTP/1.0\r\nHost: gw\r\nhost: gw\r\n\r\n",
            "HEAD /nope HTTP/1.1\r\nConnection: close\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
        ]
        for request in requests {
            let result = try await rawExchange(port: harness.port, request, group: harness.clientGroup)
            XCTAssertTrue(result.response.hasPrefix("HTTP/1.1 400"), "\(request.debugDescription): \(result.response)")
            XCTAssertTrue(result.closedByServer, "\(request.debugDescription): the server must close after a 400")
            XCTAssertFalse(result.response.contains("text/event-stream"))
        }
        let joined = try await harness.joinedClients()
        XCTAssertEqual(joined, 0)

        let http10 = try await rawExchange(
            port: harness.port,
            "HEAD /prices HTTP/1.0\r\n\r\n",
            group: harness.clientGroup
        )
        XCTAssertTrue(
            http10.response.hasPrefix("HTTP/1.0 200") || http10.response.hasPrefix("HTTP/1.1 200"),
            http10.response
        )
        let oneHost = try await rawExchange(
            port: harness.port,
            "HEAD /prices HTTP/1.1\r\nhost: gw\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        XCTAssertTrue(oneHost.response.hasPrefix("HTTP/1.1 200"), oneHost.response)
    }

    func testOversizedHeadIs431AndCloses() async throws {
        let harness = try await Harness.start(
            configure: { $0.limits.maxHeaderBytes = 2048 },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices")]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        var request = "GET /prices HTTP/1.1\r\nHost: gw\r\n"
        for index in 0..<16 { request += "X-Filler-\(index): \(String(repeating: "a", count: 240))\r\n" }
        request += "\r\n"
        XCTAssertGreaterThan(request.utf8.count, 4000)
        let result = try await rawExchange(port: harness.port, request, group: harness.clientGroup)
        XCTAssertTrue(result.response.hasPrefix("HTTP/1.1 431"), result.response)
        XCTAssertTrue(result.closedByServer)
        XCTAssertFalse(result.response.contains("text/event-stream"))

        // A head under the limit is fine.
        let small = try await rawExchange(
            port: harness.port,
            "HEAD /prices HTTP/1.1\r\nHost: gw\r\nX-Filler: \(String(repeating: "a", count: 1500))\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        XCTAssertTrue(small.response.hasPrefix("HTTP/1.1 200"), small.response)
    }

    func testRequestBodyDoesNotCountTowardsHeadLimit() async throws {
        let harness = try await Harness.start(
            configure: { $0.limits.maxHeaderBytes = 2048 },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices")]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        // A large body first (skipped by the gateway) makes the server read in large chunks afterwards.
        let large = String(repeating: "a", count: 256 * 1024)
        try await connection.send(
            "POST /prices HTTP/1.1\r\nHost: gw\r\nContent-Length: \(large.utf8.count)\r\n\r\n\(large)"
        )
        let first = try await connection.waitForResponses(1)[0]
        XCTAssertEqual(first.status, 405)
        // Then a small head with a 3 KiB body in one segment: the answer is 405 for the method, not 431,
        // because only the head counts towards max_header_bytes.
        let body = String(repeating: "b", count: 3072)
        try await connection.send(
            "POST /prices HTTP/1.1\r\nHost: gw\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        )
        let responses = try await connection.waitForResponses(2)
        XCTAssertEqual(responses[1].status, 405)
        // Two small pipelined heads in one segment are two heads, each under the limit.
        let filler = String(repeating: "c", count: 1200)
        try await connection.send(
            "GET /a HTTP/1.1\r\nHost: gw\r\nX-F: \(filler)\r\n\r\nGET /b HTTP/1.1\r\nHost: gw\r\nX-F: \(filler)\r\n\r\n"
        )
        let all = try await connection.waitForResponses(4)
        XCTAssertEqual(all[2].status, 404)
        XCTAssertEqual(all[3].status, 404)
    }

    func testStalledPartialHeadIsDisconnectedWhileOthersKeepStreaming() async throws {
        let harness = try await Harness.start(
            configure: { $0.limits.headerTimeout = .milliseconds(200) },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices")]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let streaming = try await harness.client("/prices")
        let streamingHead = try await streaming.waitForHead()
        XCTAssertEqual(streamingHead.status, .ok)
        try await eventually("client joined") { try await harness.joinedClients() == 1 }
        harness.origin.publish(data: "before")

        let started = NIODeadline.now()
        let stalled = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { stalled.close() }
        try await stalled.send("GET /prices HTTP/1.1\r\nHost: gw\r\n")
        // A slowloris trickle does not extend the deadline either.
        let trickle = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { trickle.close() }
        try await trickle.send("GET /prices HTTP/1.1\r\n")
        let trickleTask = Task {
            for index in 0..<40 {
                try? await trickle.send("X-\(index): y\r\n")
                try? await Task.sleep(nanoseconds: 50_000_000)
                if trickle.isClosed { return }
            }
        }
        defer { trickleTask.cancel() }

        try await stalled.wait("stalled client disconnected", timeout: .seconds(2)) { _, closed in closed }
        let elapsed = NIODeadline.now() - started
        XCTAssertGreaterThanOrEqual(elapsed.nanoseconds, 150_000_000, "closed before the header timeout")
        XCTAssertFalse(stalled.text.contains("text/event-stream"))
        try await trickle.wait("trickling client disconnected", timeout: .seconds(2)) { _, closed in closed }

        // The established stream is not subject to the header timeout.
        try await Task.sleep(nanoseconds: 300_000_000)
        harness.origin.publish(data: "after")
        let events = try await streaming.waitForEvents(2)
        XCTAssertEqual(events.map(\.data), ["before", "after"])
        XCTAssertFalse(streaming.isClosed)
        await streaming.close()
    }

    func testStalledRequestBodyAfterAnErrorResponseIsDisconnected() async throws {
        let harness = try await Harness.start(
            configure: { $0.limits.headerTimeout = .milliseconds(200) },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices")]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        // A body announced but never sent must not hold the connection open forever.
        try await connection.send("POST /prices HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000\r\n\r\n0123456789")
        let response = try await connection.waitForResponses(1)[0]
        XCTAssertEqual(response.status, 405)
        try await connection.wait("connection with a stalled body closed", timeout: .seconds(2)) { _, closed in closed }
    }

    func testIdleKeepAliveConnectionIsClosedAfterHeaderTimeout() async throws {
        let harness = try await Harness.start(
            configure: { $0.limits.headerTimeout = .milliseconds(200) },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices")]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await connection.send("GET /nope HTTP/1.1\r\nHost: gw\r\n\r\n")
        let notFound = try await connection.waitForResponses(1)[0]
        XCTAssertEqual(notFound.status, 404)
        try await connection.wait("idle keep-alive connection closed", timeout: .seconds(2)) { _, closed in closed }
    }

    // MARK: HTTP/1.0

    func testHTTP10StreamsWithoutChunking() async throws {
        let harness = try await Harness.start { origin in
            [try Harness.feed("/prices", upstream: "\(origin)/prices") { $0.settings.retry = .milliseconds(2500) }]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await connection.send("GET /prices HTTP/1.0\r\nHost: gw\r\n\r\n")
        try await connection.wait("response head") { text, _ in text.contains("\r\n\r\n") }
        try await eventually("client joined") { try await harness.joinedClients() == 1 }
        harness.origin.publish(data: "one\ntwo", type: "tick")
        harness.origin.publish(data: "three")
        try await connection.wait("two events") { text, _ in text.contains("data: three\n\n") }

        let response = try XCTUnwrap(RawConnection.parseResponses(connection.text, streaming: true).first)
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.header("Content-Type"), ["text/event-stream; charset=utf-8"])
        XCTAssertEqual(response.header("Transfer-Encoding"), [])
        XCTAssertEqual(response.header("Content-Length"), [])
        XCTAssertEqual(response.header("Connection").map { $0.lowercased() }, ["close"])
        XCTAssertEqual(
            response.body,
            "retry: 2500\n\nid: 1\nevent: tick\ndata: one\ndata: two\n\nid: 2\ndata: three\n\n"
        )
        XCTAssertTrue(response.body.hasPrefix("retry: 2500\n"), response.body)
        XCTAssertFalse(
            response.body.contains("\r\n"),
            "chunk framing in an HTTP/1.0 body: \(response.body.debugDescription)"
        )
        var buffer = ByteBuffer(string: response.body)
        var parser = SSEParser()
        var events: [ServerSentEvent] = []
        try parser.parse(&buffer) { if case .event(let event) = $0 { events.append(event) } }
        XCTAssertEqual(events.map(\.data), ["one\ntwo", "three"])
        XCTAssertEqual(events.map(\.type), ["tick", nil])
        XCTAssertEqual(events.map(\.id), ["1", "2"])
    }

    func testBytesSentOnAStreamAreIgnoredAndTheStreamGoesOn() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        // Garbage in the very segment of the request is parsed before the decoder leaves the pipeline.
        try await connection.send("GET /prices HTTP/1.1\r\nHost: gw\r\n\r\nXYZ NOT HTTP\r\n\r\n")
        try await connection.wait("response head") { text, _ in text.contains("\r\n\r\n") }
        try await eventually("client joined") { try await harness.joinedClients() == 1 }
        harness.origin.publish(data: "before")
        try await connection.wait("first event") { text, _ in text.contains("data: before\n\n") }

        // A pipelined request, bytes no HTTP parser accepts, and a head far over max_header_bytes: none of
        // it is parsed any more (the request decoder left when the stream started), so the stream goes on.
        try await connection.send("GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        try await connection.send("\u{01}\u{02} NOT HTTP \r\n\r\n")
        try await connection.send("GET /x HTTP/1.1\r\nX-Big: \(String(repeating: "b", count: 64 * 1024))\r\n\r\n")
        harness.origin.publish(data: "after")
        try await connection.wait("second event") { text, _ in text.contains("data: after\n\n") }
        XCTAssertFalse(connection.isClosed)
        let response = try XCTUnwrap(RawConnection.parseResponses(connection.text, streaming: true).first)
        XCTAssertEqual(
            connection.text.components(separatedBy: "HTTP/1.1 ").count,
            2,
            "exactly one response: \(connection.text.debugDescription)"
        )
        XCTAssertTrue(response.body.contains("data: before\n\n"))
        XCTAssertTrue(response.body.contains("data: after\n\n"))
    }

    func testHTTP11ConnectionCloseStreamIsChunkedAndSaysClose() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await connection.send("GET /prices HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        try await connection.wait("response head") { text, _ in text.contains("\r\n\r\n") }
        try await eventually("client joined") { try await harness.joinedClients() == 1 }
        harness.origin.publish(data: "hello")
        try await connection.wait("event") { text, _ in text.contains("data: hello\n\n") }
        let response = try XCTUnwrap(RawConnection.parseResponses(connection.text, streaming: true).first)
        XCTAssertEqual(response.status, 200)
        // RFC 9112 §9.6: the client asked for close, so the answer must not advertise keep-alive.
        XCTAssertEqual(response.header("Connection").map { $0.lowercased() }, ["close"])
        XCTAssertEqual(
            response.header("Transfer-Encoding"),
            ["chunked"],
            "HTTP/1.1 streams stay chunked so a cut is detectable"
        )
        XCTAssertEqual(response.header("Content-Length"), [])
    }

    // MARK: Helpers

    private static func corsHarness() async throws -> Harness {
        try await Harness.start { origin in
            [
                try Harness.feed("/open", upstream: "\(origin)/open") {
                    $0.settings.cors.allowOrigins = ["https://app.example"]
                },
                try Harness.feed("/closed", upstream: "\(origin)/closed"),
            ]
        }
    }

}
