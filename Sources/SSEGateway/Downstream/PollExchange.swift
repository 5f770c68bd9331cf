import CompressNIO
import NIOCore
import SSE

/// One poll response after its join (SPEC §6a): collects the prelude, the replay or the live batches in
/// memory, then answers with one finite response carrying `Content-Length`. While it waits it is a
/// `Subscriber` of the feed's shard like a stream (the shared buffers, no second fan-out), with itself as
/// the output that collects and the sink that the fan-out ends. A multi-feed poll (`MultiSession`) waits on
/// one subscriber per feed, whose lanes write here: the first batch of any feed starts the gather.
/// `PollResponse` decides when to answer. All calls happen on `loop`.
final class PollExchange: SubscriberSink, SubscriberOutput {
    private let gateway: GatewayContext
    private let transport: StreamTransport
    private let loop: EventLoop
    private let gzip: Bool
    private var machine: PollResponse
    private var head = ResponseHead.eventStream()
    private var body = ByteBuffer()
    /// Bytes written since the last flush: a flush after writes is a batch.
    private var unflushed = false
    private var result = PollResult.empty
    /// The clients waiting for a batch, each in its feed's shard (one, or one per feed of a multi poll).
    private var clients: [(subscriber: Subscriber, shard: FeedShard)] = []
    private var timer: Scheduled<Void>?
    /// What the access log line is about (handed over by its session); nil when the log is off.
    var logged: AccessLogSubject?
    /// The client resumed from an id older than the replay buffer.
    var gap = false
    /// Events collected for the answer: the replay, then what its subscribers were handed (counted as they
    /// leave, in `release`).
    private var events = 0
    /// Why the fan-out ended the wait early (drain, eviction, feed removed); nil: it answered on its own.
    private var endedBy: AccessLogEnd?

    init(gateway: GatewayContext, transport: StreamTransport, loop: EventLoop, poll: PollSettings, gzip: Bool) {
        self.gateway = gateway
        self.transport = transport
        self.loop = loop
        self.gzip = gzip
        self.machine = PollResponse(timeout: poll.timeout, gather: poll.gather)
        LiveObjects.pollExchanges.increment()
    }

    deinit {
        LiveObjects.pollExchanges.decrement()
    }

    /// The feed answered the join: answers at once with replayed events or the feed's last id, else joins
    /// the shard and waits.
    func start(
        head: ResponseHead,
        prelude: ByteBuffer,
        lookup: ReplayBuffer.Lookup,
        filter: EventFilter?,
        resumeID: String?,
        settings: FeedSettings,
        shard: FeedShard
    ) {
        var body = prelude
        self.events = lookup.events.count
        for event in lookup.events {
            body.writeImmutableBuffer(event.payload)
        }
        var result = PollResult.empty
        if !lookup.events.isEmpty {
            result = .events
        } else if (resumeID ?? "").isEmpty, let lastID = lookup.lastID {
            // An id-only block: the browser's `lastEventId` moves to the feed's last id without an event.
            SSESerializer.write(ServerSentEvent(id: lastID, type: nil, data: nil), into: &body)
            result = .id
        }
        guard self.settle(head: head, body: body, result: result, waitingOn: []) else {
            return shard.detachIfUnused()
        }
        let now = NIODeadline.now()
        let subscriber = Subscriber(
            sink: self,
            transport: self,
            limits: settings.client,
            lastSequence: lookup.lastSequence,
            resumeID: resumeID,
            filter: filter,
            now: now
        )
        subscriber.pollsOnce = true
        self.clients = [(subscriber, shard)]
        shard.add(subscriber)
    }

    /// Every feed answered its join: `body` holds the prelude and what goes out at once. With `result`
    /// `.events` or `.id` the response is sent now and `clients` leave their shards; with `.empty` it waits
    /// for the first batch any of them writes here (they are already in their shards, or are added by the
    /// caller right after). Returns whether it waits.
    @discardableResult
    func settle(
        head: ResponseHead,
        body: ByteBuffer,
        result: PollResult,
        waitingOn clients: [(subscriber: Subscriber, shard: FeedShard)]
    ) -> Bool {
        self.head = head
        self.body = body
        self.result = result
        self.clients = clients
        // What was written before the join settled is part of `body`, not a batch.
        self.unflushed = false
        switch self.machine.joined(hasContent: result != .empty) {
        case .answer:
            self.answer()
            return false
        case .armTimeout(let timeout):
            self.arm(timeout) { $0.machine.timeoutFired() }
            return true
        default:
            preconditionFailure("a join answers or waits")
        }
    }

    /// The connection or stream is gone: leave the shard and free everything.
    func clientLeft() {
        if self.machine.clientLeft() == .release {
            self.result = .left
            self.release()
            self.gateway.pollEnded(.left)
            // Gone before its answer: 499, as nginx logs a client that closed its request.
            self.logEnd(.clientClosed, status: 499, bytes: 0)
        }
    }

    private func arm(_ delay: TimeAmount, _ input: @escaping (PollExchange) -> PollResponse.Action) {
        self.timer?.cancel()
        // Weak: a client that leaves frees its exchange at once; the timer then does nothing.
        self.timer = self.loop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            guard let self else { return }
            self.run(input(self))
        }
    }

    private func run(_ action: PollResponse.Action) {
        switch action {
        case .answer:
            self.answer()
        case .armGather(let gather):
            self.result = .events
            self.arm(gather) { $0.machine.gatherFired() }
        case .release:
            self.release()
        case .armTimeout, .none:
            break
        }
    }

    private func release() {
        self.timer?.cancel()
        self.timer = nil
        let clients = self.clients
        self.clients.removeAll()
        // Idempotent: a client the fan-out already let go of (eviction, feed gone) is no longer in its shard.
        for (subscriber, shard) in clients {
            self.events += subscriber.eventsSent
            shard.remove(subscriber)
        }
    }

    private func logEnd(_ end: AccessLogEnd, status: Int, bytes: Int) {
        guard let subject = self.logged else { return }
        self.logged = nil
        self.gateway.accessLog.write(
            subject.record(status: status, end: end, gap: self.gap, events: self.events, bytes: bytes)
        )
    }

    private func answer() {
        self.release()
        var head = self.head
        var body = self.body
        self.body = ByteBuffer()
        if self.gzip, let compressed = try? body.compress(with: .gzip) {
            // The whole body at once: one deflate stream per response, no sync flushes.
            head.headers.append(("Content-Encoding", "gzip"))
            body = compressed
        }
        self.gateway.pollEnded(self.result)
        self.logEnd(self.endedBy ?? .answered, status: 200, bytes: body.readableBytes)
        self.transport.respondComplete(head, body: body)
    }

    // MARK: SubscriberOutput

    var framing: StreamFraming { .raw }
    /// Memory takes everything: the body is bounded by the replay ring and one gather window.
    var isWritable: Bool { true }
    func heldSince() -> NIODeadline? { nil }

    func writeShared(_ bytes: ByteBuffer) {
        self.body.writeImmutableBuffer(bytes)
        self.unflushed = true
    }

    func writePayload(_ bytes: ByteBuffer) {
        self.writeShared(bytes)
    }

    func flush() {
        guard self.unflushed else { return }
        self.unflushed = false
        self.run(self.machine.batchArrived())
    }

    // MARK: SubscriberSink

    func evict(_ reason: EvictionReason) {
        // The shard already let go of the subscriber (`release` removes the others of a multi poll).
        self.endedBy = AccessLogEnd(reason)
        self.run(self.machine.ended())
    }

    func close(_ reason: CloseReason) {
        // Drain, shutdown, or a feed went away: that shard already let go; answer with what there is.
        self.endedBy = AccessLogEnd(reason)
        self.run(self.machine.ended())
    }
}
