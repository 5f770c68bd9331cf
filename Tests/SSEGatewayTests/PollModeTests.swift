import CompressNIO
import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Poll mode (SPEC §6a) through the running gateway: finite `text/event-stream` responses with
/// `Content-Length` that answer at once with buffered events, wait for the next batch and gather a burst,
/// time out with only `retry:`, signal a gap, start with an id-only block, go on over one keep-alive
/// connection, over HTTP/2 and gzip; auth and `max_waiting` refuse as for streams; a client that leaves
/// while waiting frees everything.
final class PollModeTests: XCTestCase {
    static let retryOnly = "retry: 250\n\n"

    private func start(
        timeout: TimeAmount = .milliseconds(300),
        gather: TimeAmount = .milliseconds(50),
        feed configureFeed: @escaping (inout FeedConfig) -> Void = { _ in },
        gateway configureGateway: (inout GatewayConfig) -> Void = { _ in }
    ) async throws -> Harness {
        let harness = try await Harness.start(configure: configureGateway) { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.poll.timeout = timeout
                    $0.settings.poll.gather = gather
                    configureFeed(&$0)
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        return harness
    }

    /// Publishes and waits until the gateway's feed has the last one.
    private func publish(_ harness: Harness, _ range: ClosedRange<Int>) async throws {
        for index in range { harness.origin.publish(data: "event \(index)") }
        try await eventually("gateway received \(range.upperBound)") {
            try await harness.metrics().feeds.first?.lastEventID == String(range.upperBound)
        }
    }

    private func sendPoll(
        _ connection: RawConnection,
        path: String = "/prices?transport=poll",
        lastEventID: String? = nil,
        headers: [(String, String)] = []
    ) async throws {
        try await PollTest.send(connection, path: path, lastEventID: lastEventID, headers: headers)
    }

    private func events(_ body: String) -> [ServerSentEvent] {
        PollTest.events(body)
    }

    private func assertPollHead(_ response: RawConnection.Response, file: StaticString = #filePath, line: UInt = #line)
    {
        PollTest.assertHead(response, file: file, line: line)
    }

    func testAResumeIsAnsweredAtOnceWithTheBufferedEvents() async throws {
        let harness = try await self.start(timeout: .seconds(5))
        try await self.publish(harness, 1...5)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        let started = NIODeadline.now()
        try await self.sendPoll(connection, lastEventID: "2")
        let response = try await connection.waitForResponses(1)[0]
        XCTAssertLessThan(NIODeadline.now() - started, .seconds(2), "no wait when there is something to send")
        self.assertPollHead(response)
        XCTAssertTrue(response.body.hasPrefix(Self.retryOnly), response.body)
        XCTAssertEqual(self.events(response.body).map(\.id), ["3", "4", "5"])
        XCTAssertEqual(response.header("Connection"), ["keep-alive"])
    }

    func testAWaitingPollIsAnsweredByTheNextBatchAndGathersABurst() async throws {
        let harness = try await self.start(timeout: .seconds(5), gather: .milliseconds(300))
        try await self.publish(harness, 1...2)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await self.sendPoll(connection, lastEventID: "2")
        try await harness.waitUntilJoined(1)
        XCTAssertEqual(harness.gateway.context.pollWaitingCount, 1)
        harness.origin.publish(data: "event 3")
        try await Task.sleep(for: .milliseconds(100))
        for index in 4...5 { harness.origin.publish(data: "event \(index)") }
        let response = try await connection.waitForResponses(1)[0]
        self.assertPollHead(response)
        XCTAssertEqual(self.events(response.body).map(\.id), ["3", "4", "5"], "one response for the burst")
        try await eventually("slot and shard freed") {
            try await harness.metrics().clientsPerFeed["/prices", default: 0] == 0
                && harness.gateway.context.pollWaitingCount == 0
        }
        XCTAssertEqual(harness.gateway.context.pollCount(.events), 1)
    }

    /// `?event=` applies to polls too: the replay at once, and a waiting poll is answered only by its types.
    func testAFilteredPollGetsOnlyItsTypes() async throws {
        let harness = try await self.start(timeout: .seconds(5), gather: .milliseconds(100))
        harness.origin.publish(data: "p1", type: "price")
        harness.origin.publish(data: "t2", type: "trade")
        try await eventually("gateway received 2") { try await harness.metrics().feeds.first?.lastEventID == "2" }
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await self.sendPoll(connection, path: "/prices?transport=poll&event=trade", lastEventID: "0")
        let first = try await connection.waitForResponses(1)[0]
        XCTAssertEqual(self.events(first.body).map(\.data), ["t2"])

        try await self.sendPoll(connection, path: "/prices?transport=poll&event=trade", lastEventID: "2")
        try await harness.waitUntilJoined(1)
        harness.origin.publish(data: "p3", type: "price")
        try await Task.sleep(for: .milliseconds(300))
        let answered = try await connection.waitForResponses(1).count
        XCTAssertEqual(answered, 1, "a price does not answer a trade poll")
        harness.origin.publish(data: "t4", type: "trade")
        let second = try await connection.waitForResponses(2)[1]
        self.assertPollHead(second)
        XCTAssertEqual(self.events(second.body).map(\.data), ["t4"])
    }

    func testATimeoutAnswersWithOnlyRetry() async throws {
        // Keepalives are for streams: a waiting poll gets none in its body.
        let harness = try await self.start { $0.settings.keepalive = .milliseconds(100) }
        try await self.publish(harness, 1...2)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        let started = NIODeadline.now()
        try await self.sendPoll(connection, lastEventID: "2")
        let response = try await connection.waitForResponses(1)[0]
        XCTAssertGreaterThanOrEqual(NIODeadline.now() - started, .milliseconds(290))
        self.assertPollHead(response)
        XCTAssertEqual(response.body, Self.retryOnly)
        XCTAssertEqual(response.header("Content-Length"), ["12"])
        XCTAssertEqual(harness.gateway.context.pollCount(.empty), 1)
    }

    func testAResumeIDNoLongerBufferedIsSignalledAsAGap() async throws {
        let harness = try await self.start { $0.settings.replay.maxEvents = 3 }
        try await self.publish(harness, 1...10)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await self.sendPoll(connection, lastEventID: "1")
        let response = try await connection.waitForResponses(1)[0]
        self.assertPollHead(response)
        XCTAssertEqual(response.header("Last-Event-ID"), ["8"])
        XCTAssertTrue(response.body.contains(": gap: last event id 1 is not buffered"), response.body)
        XCTAssertEqual(self.events(response.body).map(\.id), ["8", "9", "10"])
    }

    func testWithoutResumeIDAnIDOnlyBlockThenTheNextPollOnTheSameConnectionResumes() async throws {
        let harness = try await self.start(timeout: .seconds(5))
        try await self.publish(harness, 1...3)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await self.sendPoll(connection)
        let first = try await connection.waitForResponses(1)[0]
        self.assertPollHead(first)
        XCTAssertEqual(first.body, Self.retryOnly + "id: 3\n\n", "the browser's lastEventId moves, no event fires")
        XCTAssertEqual(self.events(first.body).count, 0)
        // EventSource's reconnect, on the same keep-alive connection.
        try await self.sendPoll(connection, lastEventID: "3")
        try await harness.waitUntilJoined(1)
        try await self.publish(harness, 4...4)
        let second = try await connection.waitForResponses(2)[1]
        self.assertPollHead(second)
        XCTAssertEqual(self.events(second.body).map(\.id), ["4"])
        XCTAssertFalse(connection.isClosed)
        XCTAssertEqual(harness.gateway.context.pollCount(.id), 1)
    }

    func testAFeedWithoutAnIDYetWaitsForTheFirstBatch() async throws {
        let harness = try await self.start(timeout: .seconds(5))
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await self.sendPoll(connection)
        try await harness.waitUntilJoined(1)
        try await self.publish(harness, 1...1)
        let response = try await connection.waitForResponses(1)[0]
        XCTAssertEqual(self.events(response.body).map(\.id), ["1"])
    }

    func testDeliveryPollOnTheFeedAndOnTheListener() async throws {
        let harness = try await self.start(feed: { $0.settings.delivery = .poll })
        try await self.publish(harness, 1...2)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await self.sendPoll(connection, path: "/prices", lastEventID: "1")
        let response = try await connection.waitForResponses(1)[0]
        self.assertPollHead(response)
        XCTAssertEqual(self.events(response.body).map(\.id), ["2"])

        let listener = try await self.start(gateway: { $0.listen[0].delivery = .poll })
        try await self.publish(listener, 1...2)
        let other = try await RawConnection.connect(port: listener.port, group: listener.clientGroup)
        defer { other.close() }
        try await self.sendPoll(other, path: "/prices", lastEventID: "1")
        let answer = try await other.waitForResponses(1)[0]
        self.assertPollHead(answer)
        XCTAssertEqual(self.events(answer.body).map(\.id), ["2"])
    }

    func testAReloadChangesAListenersDeliveryForNewConnections() async throws {
        let harness = try await self.start()
        try await self.publish(harness, 1...2)
        var config = harness.gateway.config
        config.listen[0] = ListenerConfig(address: harness.gateway.config.listen[0].address, delivery: .poll)
        let (_, errors) = await harness.gateway.reload(config)
        XCTAssertEqual(errors, [])
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await self.sendPoll(connection, path: "/prices", lastEventID: "1")
        let response = try await connection.waitForResponses(1)[0]
        self.assertPollHead(response)
        XCTAssertEqual(self.events(response.body).map(\.id), ["2"])
    }

    func testOverHTTP2TheResponseEndsWithEndStream() async throws {
        let harness = try await self.start(timeout: .seconds(5))
        try await self.publish(harness, 1...3)
        let client = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        defer { Task { await client.close() } }
        let immediate = try await client.request("/prices?transport=poll", headers: [("last-event-id", "1")])
        let first = try await immediate.waitForEnd()
        XCTAssertTrue(first.endStream)
        XCTAssertEqual(first.status, 200)
        XCTAssertEqual(first.header("content-length"), [String(first.body.utf8.count)])
        XCTAssertEqual(first.events.map(\.id), ["2", "3"])
        let waiting = try await client.request("/prices?transport=poll", headers: [("last-event-id", "3")])
        try await harness.waitUntilJoined(1)
        try await self.publish(harness, 4...4)
        let second = try await waiting.waitForEnd()
        XCTAssertTrue(second.endStream)
        XCTAssertEqual(second.events.map(\.id), ["4"])
    }

    func testGzipCompressesTheWholeBodyOnce() async throws {
        let harness = try await self.start()
        try await self.publish(harness, 1...20)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await self.sendPoll(connection, lastEventID: "10", headers: [("Accept-Encoding", "gzip")])
        let received = try await connection.wait("a gzip response") { text, _ in
            guard let head = text.range(of: "\r\n\r\n") else { return false }
            return text[..<head.lowerBound].lowercased().contains("content-length")
        }
        _ = received
        var bytes: [UInt8] = []
        var head = ""
        var length = 0
        try await eventually("the whole body") {
            bytes = connection.bytes
            guard let end = (0..<max(0, bytes.count - 3)).first(where: { bytes[$0..<$0 + 4] == [13, 10, 13, 10] })
            else { return false }
            head = String(decoding: bytes[..<end], as: UTF8.self)
            let line = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            length = Int(line?.split(separator: ":")[1].trimmingCharacters(in: .whitespaces) ?? "") ?? -1
            bytes = Array(bytes[(end + 4)...])
            return bytes.count >= length
        }
        XCTAssertTrue(head.contains("Content-Encoding: gzip"), head)
        XCTAssertEqual(bytes.count, length, "Content-Length is the compressed body's")
        var input = ByteBuffer(bytes: bytes)
        let inflater = try ZlibDecompressor(algorithm: .gzip)
        let body = String(buffer: try inflater.inflateAll(&input))
        XCTAssertTrue(body.hasPrefix(Self.retryOnly))
        XCTAssertEqual(self.events(body).map(\.id), (11...20).map(String.init))

        let h2 = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        defer { Task { await h2.close() } }
        let stream = try await h2.request(
            "/prices?transport=poll",
            headers: [("last-event-id", "18"), ("accept-encoding", "gzip")],
            gunzip: true
        )
        let answer = try await stream.waitForEnd()
        XCTAssertEqual(answer.header("content-encoding"), ["gzip"])
        XCTAssertEqual(answer.header("content-length"), [String(answer.bodyBytes)])
        XCTAssertEqual(answer.events.map(\.id), ["19", "20"])
    }

    func testAJWTFeedRefusesAPollWithoutAToken() async throws {
        let fixture = try AuthGateFixture()
        let harness = try await self.start { $0.settings.auth = fixture.auth(.jwt) }
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await self.sendPoll(connection, lastEventID: "1")
        let refused = try await connection.waitForResponses(1)[0]
        XCTAssertEqual(refused.status, 401)
        XCTAssertEqual(refused.header("Content-Type"), ["application/json"])
        XCTAssertEqual(harness.gateway.context.pollWaitingCount, 0, "a refused poll holds no slot")
        try await self.publish(harness, 1...2)
        let token = try await fixture.token()
        try await self.sendPoll(connection, lastEventID: "1", headers: [("Authorization", "Bearer \(token)")])
        let allowed = try await connection.waitForResponses(2)[1]
        self.assertPollHead(allowed)
        XCTAssertEqual(self.events(allowed.body).map(\.id), ["2"])
    }

    func testOverMaxWaitingA503WithRetryAfterAndNoClientSlotTaken() async throws {
        let harness = try await self.start(
            timeout: .seconds(5),
            gateway: {
                $0.limits.maxPollWaiting = 1
                $0.limits.maxClients = 1
            }
        )
        try await self.publish(harness, 1...1)
        let waiting = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { waiting.close() }
        try await self.sendPoll(waiting, lastEventID: "1")
        try await harness.waitUntilJoined(1)
        // The stream still gets the one `max_clients` slot: the poll does not hold it.
        let stream = try await harness.client("/prices")
        let head = try await stream.waitForHead()
        XCTAssertEqual(head.status, .ok)
        let refused = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { refused.close() }
        try await self.sendPoll(refused, lastEventID: "1")
        let response = try await refused.waitForResponses(1)[0]
        XCTAssertEqual(response.status, 503)
        XCTAssertEqual(response.body, "too many poll requests\n")
        let retryAfter = Int(response.header("Retry-After").first ?? "") ?? 0
        XCTAssertTrue((3...6).contains(retryAfter), "jittered between retry and twice it: \(retryAfter)")
        XCTAssertEqual(harness.gateway.context.pollCount(.overCapacity), 1)
        await stream.close()
    }

    func testAClientThatLeavesWhileWaitingFreesEverything() async throws {
        try await waitUntilNoLiveObjects()
        let harness = try await self.start(timeout: .seconds(5))
        try await self.publish(harness, 1...1)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        try await self.sendPoll(connection, lastEventID: "1")
        try await harness.waitUntilJoined(1)
        XCTAssertEqual(LiveObjects.pollExchanges.value, 1)
        await connection.closeAndWait()
        try await eventually("everything freed") {
            try await harness.metrics().clientsPerFeed["/prices", default: 0] == 0
                && harness.gateway.context.pollWaitingCount == 0
                && LiveObjects.pollExchanges.value == 0 && LiveObjects.sessions.value == 0
                && LiveObjects.http1Connections.value == 0
        }
        XCTAssertEqual(harness.gateway.context.pollCount(.left), 1)

        // The same for an HTTP/2 stream reset while it waits, and for one that was answered.
        let client = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        let answered = try await client.request("/prices?transport=poll", headers: [("last-event-id", "0")])
        _ = try await answered.waitForEnd()
        let waiting = try await client.request("/prices?transport=poll", headers: [("last-event-id", "1")])
        try await harness.waitUntilJoined(1)
        await waiting.cancel()
        try await eventually("the HTTP/2 streams freed") {
            try await harness.metrics().clientsPerFeed["/prices", default: 0] == 0
                && harness.gateway.context.pollWaitingCount == 0
                && LiveObjects.pollExchanges.value == 0 && LiveObjects.sessions.value == 0
                && LiveObjects.http2Streams.value == 0
        }
        XCTAssertEqual(harness.gateway.context.pollCount(.left), 2)
        await client.close()
    }

    func testADrainAnswersAWaitingPollAtOnce() async throws {
        let harness = try await self.start(timeout: .seconds(10))
        try await self.publish(harness, 1...1)
        let connection = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        defer { connection.close() }
        try await self.sendPoll(connection, lastEventID: "1")
        try await harness.waitUntilJoined(1)
        let started = NIODeadline.now()
        let hubs = harness.gateway.context.allHubs
        for hub in hubs { _ = hub.drain(window: .seconds(60)) }
        let response = try await connection.waitForResponses(1)[0]
        XCTAssertLessThan(NIODeadline.now() - started, .seconds(2), "not at a random moment of the window")
        self.assertPollHead(response)
        XCTAssertEqual(response.body, Self.retryOnly)
    }
}
