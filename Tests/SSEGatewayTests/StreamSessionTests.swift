import NIOCore
import NIOEmbedded
import SSE
import XCTest

@testable import SSEGateway

/// `StreamSession` and `FeedShard` with a recording transport in place of a connection, on one embedded
/// event loop: the head and prelude of a join, fan-out of one batch to every client, replay after a
/// `Last-Event-ID`, eviction of a client whose queue overflows, and the release of a client slot.
final class StreamSessionTests: XCTestCase {
    private func gateway(
        limits: LimitsConfig = LimitsConfig(),
        configure: (inout FeedConfig) -> Void = { _ in }
    ) throws -> EmbeddedGateway {
        EmbeddedGateway(feeds: [try EmbeddedGateway.feed("/prices", configure: configure)], limits: limits)
    }

    /// Admits and begins a session for a GET of `/prices` over a new recording transport, then runs the
    /// loop's queued tasks unless `runLoop` is false.
    private func join(
        _ gateway: EmbeddedGateway,
        headers: [(String, String)] = [],
        framing: StreamFraming = .raw,
        runLoop: Bool = true,
        file: StaticString = #filePath,
        line: UInt = #line
    ) throws -> (StreamSession, RecordingTransport) {
        let transport = RecordingTransport(framing: framing)
        let session = try XCTUnwrap(
            StreamSession.admit(
                gateway.streamRequest("/prices", headers: headers),
                gateway: gateway.context,
                transport: transport,
                loop: gateway.loop
            ),
            "admitted",
            file: file,
            line: line
        )
        session.begin()
        if runLoop { gateway.loop.run() }
        return (session, transport)
    }

    func testAJoinWritesTheEventStreamHeadAndTheRetryPreludeThenLiveEvents() throws {
        let gateway = try self.gateway { $0.settings.retry = .milliseconds(1500) }
        let (_, transport) = try self.join(gateway)
        XCTAssertEqual(transport.heads.count, 1)
        XCTAssertEqual(transport.heads.first?.status, .ok)
        XCTAssertEqual(
            transport.heads.first?.headers.first { $0.0 == "Content-Type" }?.1,
            "text/event-stream; charset=utf-8"
        )
        XCTAssertEqual(transport.text, "retry: 1500\n\n")
        XCTAssertGreaterThan(transport.flushes, 0, "the prelude is flushed at once")
        XCTAssertEqual(gateway.clients("/prices"), 1)

        gateway.publish("/prices", ids: 1...2)
        XCTAssertEqual(transport.text, "retry: 1500\n\nid: 1\ndata: event 1\n\nid: 2\ndata: event 2\n\n")
        XCTAssertFalse(transport.finished)
        XCTAssertFalse(transport.aborted)
    }

    /// One batch reaches every client of the shard once, each event once, and is counted once per client.
    func testABatchFansOutToEveryClientOnce() throws {
        let gateway = try self.gateway()
        let clients = try (0..<5).map { _ in try self.join(gateway) }
        XCTAssertEqual(gateway.clients("/prices"), 5)
        let before = clients.map { $0.1.written.readableBytes }
        gateway.publish("/prices", ids: 1...3)
        gateway.publish("/prices", ids: 4...4)
        let expected = (1...4).map { "id: \($0)\ndata: event \($0)\n\n" }.joined()
        for (index, (_, transport)) in clients.enumerated() {
            var written = transport.written
            written.moveReaderIndex(forwardBy: before[index])
            XCTAssertEqual(String(buffer: written), expected, "client \(index)")
        }
        XCTAssertEqual(gateway.stats("/prices").deliveries, 5 * 4)
    }

    /// Chunked framing (HTTP/1.1): each event is its own chunk, the prelude too.
    func testChunkedFramingFramesThePreludeAndEachEvent() throws {
        let gateway = try self.gateway { $0.settings.retry = .milliseconds(1000) }
        let (_, transport) = try self.join(gateway, framing: .chunked)
        gateway.publish("/prices", ids: 1...1)
        XCTAssertEqual(transport.text, "d\r\nretry: 1000\n\n\r\n15\r\nid: 1\ndata: event 1\n\n\r\n")
    }

    /// A client that resumes gets exactly the buffered events after its `Last-Event-ID`, then live ones.
    func testAResumeReplaysOnlyTheEventsAfterTheLastEventID() throws {
        let gateway = try self.gateway()
        gateway.publish("/prices", ids: 1...5)
        let (_, transport) = try self.join(gateway, headers: [("Last-Event-ID", "3")])
        XCTAssertFalse(transport.text.contains("data: event 3\n"), transport.text)
        XCTAssertTrue(transport.text.hasSuffix("id: 4\ndata: event 4\n\nid: 5\ndata: event 5\n\n"), transport.text)
        gateway.publish("/prices", ids: 6...6)
        XCTAssertTrue(transport.text.hasSuffix("id: 5\ndata: event 5\n\nid: 6\ndata: event 6\n\n"), transport.text)
        XCTAssertEqual(transport.text.components(separatedBy: "data: event 5\n").count, 2, "no event twice")
    }

    /// A client without a resume id joins live: nothing from the buffer.
    func testAFreshClientGetsNoReplay() throws {
        let gateway = try self.gateway()
        gateway.publish("/prices", ids: 1...5)
        let (_, transport) = try self.join(gateway)
        XCTAssertFalse(transport.text.contains("data:"), transport.text)
    }

    /// A client whose transport stopped taking bytes queues them up to `max_queue`; past it, only that
    /// client is evicted (its stream aborted) while the others go on.
    func testAClientOverMaxQueueIsEvictedAndTheOthersGoOn() throws {
        let gateway = try self.gateway { $0.settings.client.maxQueue = 200 }
        let (slowSession, slow) = try self.join(gateway)
        let (_, fast) = try self.join(gateway)
        slow.isWritable = false
        slowSession.writabilityChanged()
        gateway.publish("/prices", ids: 1...2)
        XCTAssertFalse(slow.aborted, "two short events fit in the queue")
        gateway.publish("/prices", [ServerSentEvent(id: "3", data: String(repeating: "x", count: 300))])
        XCTAssertTrue(slow.aborted, "over max_queue: evicted")
        XCTAssertFalse(slow.text.contains("id: 3"), "nothing more reaches an evicted client")
        XCTAssertEqual(gateway.stats("/prices").evictionsMaxQueue, 1)
        XCTAssertEqual(gateway.clients("/prices"), 1)

        gateway.publish("/prices", ids: 4...4)
        XCTAssertFalse(fast.aborted)
        XCTAssertTrue(fast.text.hasSuffix("id: 4\ndata: event 4\n\n"), fast.text)
    }

    /// What a blocked client queued goes out, in order, once its transport takes bytes again.
    func testQueuedEventsGoOutInOrderWhenTheTransportTurnsWritable() throws {
        let gateway = try self.gateway()
        let (session, transport) = try self.join(gateway)
        let prelude = transport.text
        transport.isWritable = false
        session.writabilityChanged()
        gateway.publish("/prices", ids: 1...3)
        XCTAssertEqual(transport.text, prelude, "nothing written while blocked")
        transport.isWritable = true
        session.writabilityChanged()
        gateway.loop.run()
        XCTAssertEqual(transport.text, prelude + (1...3).map { "id: \($0)\ndata: event \($0)\n\n" }.joined())
    }

    /// The client leaves: it is no longer written to, and its slot under `max_clients` is free again.
    func testAClosedTransportLeavesTheShardAndFreesItsSlot() throws {
        var limits = LimitsConfig()
        limits.maxClients = 1
        let gateway = try self.gateway(limits: limits)
        let (session, transport) = try self.join(gateway)
        XCTAssertNil(
            StreamSession.admit(
                gateway.streamRequest("/prices"),
                gateway: gateway.context,
                transport: RecordingTransport(),
                loop: gateway.loop
            ),
            "max_clients = 1: the second client is refused"
        )
        session.transportClosed()
        let written = transport.written.readableBytes
        XCTAssertEqual(gateway.context.clientCount, 0)
        XCTAssertEqual(gateway.clients("/prices"), 0)
        gateway.publish("/prices", ids: 1...1)
        XCTAssertEqual(transport.written.readableBytes, written, "nothing written after the close")
        _ = try self.join(gateway)
        XCTAssertEqual(gateway.context.clientCount, 1, "the freed slot admits a new client")
    }

    /// A client that joins on the feed's own loop right after the shard there emptied gets the next batch.
    /// The emptied shard's detach from the feed runs later, in a task on the loop; until it does the feed
    /// holds two shards on its own loop and must write to both. It wrote to one of them (whichever its
    /// dictionary listed last), so the new client silently missed the batch: 1,688 events under 10,000
    /// poll clients whose waiting polls keep emptying and refilling the shard.
    func testAJoinRightAfterTheShardEmptiedGetsTheNextBatch() throws {
        let gateway = try self.gateway()
        var (leaving, _) = try self.join(gateway)
        gateway.publish("/prices", ids: 1...1)
        // The feed's dictionary order decides which shard the old code wrote to: 20 rounds.
        for id in 2...21 {
            leaving.transportClosed()  // the shard is empty; its detach is queued on the loop
            // Same loop as the feed: joined at once, in a new shard; the queued detach does not run yet.
            let (session, transport) = try self.join(gateway, runLoop: false)
            XCTAssertEqual(gateway.clients("/prices"), 1)
            gateway.publish("/prices", ids: id...id)  // delivered before the queued detach runs
            XCTAssertTrue(
                transport.text.hasSuffix("id: \(id)\ndata: event \(id)\n\n"),
                "round \(id): the new client got the batch: \(transport.text.debugDescription)"
            )
            leaving = session
        }
    }

    /// A feed removed by a reload ends each stream cleanly with its `retry:`.
    func testEndAllSendsRetryAndFinishesEveryStream() throws {
        let gateway = try self.gateway()
        let clients = try (0..<3).map { _ in try self.join(gateway) }
        let shard = gateway.hub.shard(for: gateway.feed(at: "/prices"))
        shard.endAll(retry: .milliseconds(2500), reason: .feedRemoved)
        for (_, transport) in clients {
            XCTAssertTrue(transport.text.hasSuffix("retry: 2500\n\n"), transport.text)
            XCTAssertTrue(transport.finished)
            XCTAssertFalse(transport.aborted)
        }
        XCTAssertEqual(gateway.clients("/prices"), 0)
    }
}
