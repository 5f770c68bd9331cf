import NIOCore
import NIOHTTP1

/// The protocol-independent life of one SSE response: admission against `max_clients`, joining the feed
/// (the replay lookup happens on the feed's loop), the head, the prelude and the replay, then serving as
/// the client's `SubscriberSink` until the transport closes. HTTP/1 and HTTP/2 handlers only route the
/// request and carry bytes.
final class StreamSession: SubscriberSink {
    private enum State {
        /// Asked the feed for the replay; the stream starts when it answers.
        case joining(StreamRequest, attempts: Int)
        case streaming(Subscriber, FeedShard)
        case closed
    }

    private let gateway: GatewayContext
    private let transport: StreamTransport
    private let loop: EventLoop
    private var state: State
    private var holdsClientSlot = true

    /// Takes a client slot for a stream, or returns nil when `limits.max_clients` are connected (the
    /// caller answers 503). The caller records the session (so that writability changes reach it) and
    /// then calls `begin()`.
    static func admit(
        _ request: StreamRequest,
        gateway: GatewayContext,
        transport: StreamTransport,
        loop: EventLoop
    ) -> StreamSession? {
        guard gateway.admitClient() else { return nil }
        var transport = transport
        if request.gzip, let gzip = try? GzipTransport(wrapping: transport) {
            transport = gzip
        }
        return StreamSession(request: request, gateway: gateway, transport: transport, loop: loop)
    }

    /// Joins the feed; the head, prelude and replay follow when the feed answers (possibly at once).
    func begin() {
        guard case .joining(let request, let attempts) = self.state else { return }
        self.join(request, attempts: attempts)
    }

    private init(request: StreamRequest, gateway: GatewayContext, transport: StreamTransport, loop: EventLoop) {
        self.gateway = gateway
        self.transport = transport
        self.loop = loop
        self.state = .joining(request, attempts: 0)
        LiveObjects.sessions.increment()
    }

    deinit {
        LiveObjects.sessions.decrement()
    }

    /// The 503 a client over `max_clients` gets.
    static func overCapacity(_ request: StreamRequest) -> (ResponseHead, String) {
        Self.unavailable(request, "too many clients\n")
    }

    private static func unavailable(_ request: StreamRequest, _ reason: String) -> (ResponseHead, String) {
        ResponseHead.plain(
            .serviceUnavailable,
            reason,
            headers: [("Retry-After", RequestRouter.retryAfter(request.target.definition.settings.retry))]
        )
    }

    private func join(_ request: StreamRequest, attempts: Int) {
        self.state = .joining(request, attempts: attempts)
        let feed: Feed
        switch self.gateway.registry.acquire(
            request.target,
            clientAddress: request.clientAddress,
            rates: self.gateway.limits.newFeedRates
        ) {
        case .feed(let acquired):
            feed = acquired
        case .tooManyFeeds:
            return self.refuse(Self.unavailable(request, "too many feeds open for \(request.target.definition.path)\n"))
        case .tooManyNewFeeds(let perAddress):
            let reason = perAddress ? "too many new feeds from this address\n" : "too many new feeds\n"
            return self.refuse(
                ResponseHead.plain(
                    .serviceUnavailable,
                    reason,
                    headers: [
                        ("Retry-After", RequestRouter.jitteredRetryAfter(request.target.definition.settings.retry))
                    ]
                )
            )
        case .unavailable:
            return self.refuse(Self.unavailable(request, "feed unavailable\n"))
        }
        // Weak: a client that leaves while its join is under way (e.g. a stream reset right after its
        // HEADERS, or a resume parked for up to a second) frees its session, transport and channel at
        // once; only the shard waits for the feed's answer.
        self.gateway.hub(for: self.loop).subscribe(feed: feed, resumeID: request.resumeID) {
            [weak self] shard, answer in
            guard let self else { return shard.detachIfUnused() }
            self.joined(shard: shard, answer: answer)
        }
    }

    private func refuse(_ response: (ResponseHead, String)) {
        self.state = .closed
        self.releaseClientSlot()
        self.transport.respond(response.0, body: response.1)
    }

    private func joined(shard: FeedShard, answer: JoinAnswer) {
        guard case .joining(let request, let attempts) = self.state else {
            // The client left while the feed answered.
            shard.detachIfUnused()
            return
        }
        let lookup: ReplayBuffer.Lookup
        switch answer {
        case .joined(let answered):
            lookup = answered
        case .closed:
            // The feed closed meanwhile (an on-demand template that lingered out): acquire it again.
            shard.detachIfUnused()
            guard attempts < 3 else { return self.refuse(Self.unavailable(request, "feed unavailable\n")) }
            self.join(request, attempts: attempts + 1)
            return
        case .upstreamRefused(let status):
            // A new template value the backend does not have: the client learns so, nothing retries.
            shard.detachIfUnused()
            let text = status == 410 ? "gone\n" : "not found\n"
            return self.refuse(
                ResponseHead.plain(HTTPResponseStatus(statusCode: status), text, headers: request.corsHeaders)
            )
        }
        let settings = request.target.definition.settings
        var head = ResponseHead.eventStream()
        head.headers += request.corsHeaders
        let replayFrom = StreamPrelude.replayStart(lookup)
        if lookup.resume == .gap, let replayFrom {
            head.headers.append(("Last-Event-ID", replayFrom))
        }
        self.transport.writeHead(head)
        self.transport.writePayload(
            StreamPrelude.make(
                settings: settings,
                lookup: lookup,
                resumeID: request.resumeID,
                replayFrom: replayFrom,
                allocator: ByteBufferAllocator()
            )
        )

        let now = NIODeadline.now()
        let subscriber = Subscriber(
            sink: self,
            transport: self.transport,
            limits: settings.client,
            lastSequence: lookup.lastSequence,
            resumeID: request.resumeID,
            now: now
        )
        self.state = .streaming(subscriber, shard)
        shard.add(subscriber)
        subscriber.queue.writabilityChanged(isWritable: self.transport.isWritable, now: now)
        let framing = self.transport.framing
        for event in lookup.events {
            _ = subscriber.offer(framing.bytes(of: event), producedAt: now, now: now, replay: true)
        }
        self.transport.flush()
    }

    /// The transport's writability changed (channel watermarks, or HTTP/2 flow control).
    func writabilityChanged() {
        if case .streaming(let subscriber, _) = self.state {
            subscriber.writabilityChanged(isWritable: self.transport.isWritable, now: .now())
        }
    }

    /// The connection or stream is gone.
    func transportClosed() {
        if case .streaming(let subscriber, let shard) = self.state {
            shard.remove(subscriber)
        }
        self.state = .closed
        self.releaseClientSlot()
    }

    private func releaseClientSlot() {
        if self.holdsClientSlot {
            self.holdsClientSlot = false
            self.gateway.releaseClient()
        }
    }

    // MARK: SubscriberSink

    func evict(_ reason: EvictionReason) {
        self.state = .closed  // the shard has already let go of the subscriber; nothing more is written
        self.transport.abort()
    }

    func close() {
        self.state = .closed
        self.transport.finish()
    }
}
