import NIOCore
import NIOHTTP1

import struct Foundation.Date

/// The protocol-independent life of one SSE response: admission against `max_clients`, the feed's access
/// check (`auth:`), joining the feed (the replay lookup happens on the feed's loop), the head, the prelude
/// and the replay, then serving as the client's `SubscriberSink` until the transport closes or the
/// credential runs out. HTTP/1 and HTTP/2 handlers only route the request and carry bytes.
final class StreamSession: SubscriberSink, CredentialWatcher {
    private enum State {
        /// The feed's authorizer is deciding (it may call out); the stream starts if it allows.
        case authorizing(StreamRequest)
        /// Asked the feed for the replay; the stream starts when it answers.
        case joining(StreamRequest, attempts: Int)
        case streaming(Subscriber, FeedShard)
        /// A poll request past its join: the exchange answers it (and holds its poll slot).
        case polling(PollExchange)
        case closed
    }

    private let gateway: GatewayContext
    private let transport: StreamTransport
    private let loop: EventLoop
    private var state: State
    /// What admission took: a `max_clients` slot (a stream), a `poll.max_waiting` slot (a poll), or nothing.
    private var slot: Slot

    private enum Slot {
        case client, poll, none
    }
    /// The address whose `max_clients_per_address` slot a `.client` slot also holds.
    private let clientAddress: String?
    /// What the authorizer allowed, while it may still end the stream (an `exp`, a re-check).
    private var grant: AuthGrant?
    /// The timers of `grant`: the `auth-expiring` warning, the end at `exp`, the next re-check.
    private var credentialWatch: CredentialWatch?
    /// What the access log line is about, until it is written (a poll hands it to its exchange); nil when
    /// the log is off, and then nothing is collected.
    private var logged: AccessLogSubject?
    /// The client resumed from an id older than the replay buffer (for the access log).
    private var gap = false

    /// Takes a client slot and a slot of the client's address for a stream (a poll slot for a poll), or
    /// says which 503 to answer. The caller records the session (so that writability changes reach it)
    /// and then calls `begin()`.
    static func admission(
        _ request: StreamRequest,
        gateway: GatewayContext,
        transport: StreamTransport,
        loop: EventLoop
    ) -> SessionAdmission<StreamSession> {
        if gateway.draining {
            return .draining(retry: request.target.definition.settings.retry, corsHeaders: request.corsHeaders)
        }
        if request.poll != nil {
            // A poll compresses its whole body once (`PollExchange`), not as a stream. It is not counted
            // per address: it holds its slot for one poll timeout at most, under `poll.max_waiting`.
            guard gateway.admitPoll() else {
                gateway.countPoll(.overCapacity)
                return .refused(Self.overCapacity(request), reason: "max_poll_waiting")
            }
            return .admitted(
                StreamSession(request: request, gateway: gateway, transport: transport, loop: loop, slot: .poll)
            )
        }
        guard gateway.admitClient() else {
            return .refused(Self.overCapacity(request), reason: "max_clients")
        }
        guard gateway.admitAddress(request.clientAddress, count: 1) else {
            gateway.releaseClient()
            return .refused(Self.overAddressLimit(request), reason: "max_clients_per_address")
        }
        var transport = transport
        if request.gzip {
            transport = GzipTransport(
                wrapping: transport,
                deflater: gateway.hub(for: loop).deflater,
                sharesFragments: true
            )
        }
        return .admitted(
            StreamSession(request: request, gateway: gateway, transport: transport, loop: loop, slot: .client)
        )
    }

    /// `admission`'s session, or nil when refused.
    static func admit(
        _ request: StreamRequest,
        gateway: GatewayContext,
        transport: StreamTransport,
        loop: EventLoop
    ) -> StreamSession? {
        guard case .admitted(let session) = Self.admission(request, gateway: gateway, transport: transport, loop: loop)
        else { return nil }
        return session
    }

    /// The 503 a client over `max_clients_per_address` gets: jittered, so that the streams of one address
    /// (a NAT, a reconnect loop) do not all come back in the same second.
    static func overAddressLimit(_ request: StreamRequest) -> (ResponseHead, String) {
        ResponseHead.plain(
            .serviceUnavailable,
            "too many streams from this address\n",
            headers: [("Retry-After", RequestRouter.jitteredRetryAfter(request.target.definition.settings.retry))]
                + request.corsHeaders
        )
    }

    /// Checks access (when the feed has `auth:`), then joins the feed; the head, prelude and replay follow
    /// when the feed answers (possibly at once).
    func begin() {
        guard case .joining(let request, let attempts) = self.state else { return }
        if var authRequest = request.authRequest,
            let authorizer = self.gateway.access.authorizer(forFeed: request.target.definition.name)
        {
            authRequest.clientAddress = request.clientAddress
            self.state = .authorizing(request)
            self.authorize(authRequest, with: authorizer, template: request.target.definition.path) {
                session,
                decision in session.authorized(decision)
            }
            return
        }
        self.join(request, attempts: attempts)
    }

    /// Asks `authorizer` off the loop and hands the decision back on it, to this session if it still exists.
    private func authorize(
        _ authRequest: AuthRequest,
        with authorizer: any FeedAuthorizer,
        template: PathTemplate,
        then: @escaping (StreamSession, AuthDecision) -> Void
    ) {
        let decided = authorizer.decision(for: authRequest, feedTemplate: template, on: self.loop)
        // Weak: a client that leaves while its credential is checked frees its session at once.
        decided.assumeIsolated().whenSuccess { [weak self] decision in
            guard let self else { return }
            then(self, decision)
        }
    }

    private func authorized(_ decision: AuthDecision) {
        guard case .authorizing(let request) = self.state else { return }
        self.gateway.access.outcomes.record(feed: request.target.definition.name, decision: decision)
        guard case .allowed(let grant) = decision else {
            let settings = request.target.definition.settings
            let (end, reason) = AccessRefusal.logged(decision)
            return self.refuse(
                AccessRefusal.response(
                    for: decision,
                    retryAfter: RequestRouter.jitteredRetryAfter(settings.retry),
                    extraHeaders: request.corsHeaders
                ),
                end: end,
                reason: reason
            )
        }
        if !grant.anonymous { self.grant = grant }
        self.join(request, attempts: 0)
    }

    private init(
        request: StreamRequest,
        gateway: GatewayContext,
        transport: StreamTransport,
        loop: EventLoop,
        slot: Slot
    ) {
        self.gateway = gateway
        self.slot = slot
        self.clientAddress = request.clientAddress
        self.transport = transport
        self.loop = loop
        self.state = .joining(request, attempts: 0)
        self.logged = request.accessLogSubject
        LiveObjects.sessions.increment()
    }

    deinit {
        LiveObjects.sessions.decrement()
    }

    /// The 503 a client over `max_clients` gets.
    static func overCapacity(_ request: StreamRequest) -> (ResponseHead, String) {
        if request.poll != nil {
            return ResponseHead.plain(
                .serviceUnavailable,
                "too many poll requests\n",
                headers: [("Retry-After", RequestRouter.jitteredRetryAfter(request.target.definition.settings.retry))]
                    + request.corsHeaders
            )
        }
        return Self.unavailable(request, "too many clients\n")
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
            return self.refuse(
                Self.unavailable(request, "too many feeds open for \(request.target.definition.path)\n"),
                end: .refused,
                reason: "max_feeds"
            )
        case .tooManyNewFeeds(let perAddress):
            let reason = perAddress ? "too many new feeds from this address\n" : "too many new feeds\n"
            return self.refuse(
                ResponseHead.plain(
                    .serviceUnavailable,
                    reason,
                    headers: [
                        ("Retry-After", RequestRouter.jitteredRetryAfter(request.target.definition.settings.retry))
                    ]
                ),
                end: .refused,
                reason: perAddress ? "new_feeds_per_address" : "new_feeds_per_second"
            )
        case .unavailable:
            return self.refuse(
                Self.unavailable(request, "feed unavailable\n"),
                end: .refused,
                reason: "feed_unavailable"
            )
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

    private func refuse(_ response: (ResponseHead, String), end: AccessLogEnd, reason: String) {
        self.state = .closed
        self.releaseClientSlot()
        self.logEnd(end, status: Int(response.0.status.code), reason: reason, bytes: response.1.utf8.count)
        self.transport.respond(response.0, body: response.1)
    }

    /// Writes the access log line of this request (once; nothing when the log is off).
    private func logEnd(
        _ end: AccessLogEnd,
        status: Int,
        reason: String? = nil,
        events: Int = 0,
        bytes: Int? = nil
    ) {
        guard let subject = self.logged else { return }
        self.logged = nil
        self.gateway.accessLog.write(
            subject.record(
                status: status,
                end: end,
                reason: reason,
                gap: self.gap,
                events: events,
                bytes: bytes ?? self.transport.bytesWritten
            )
        )
    }

    private func joined(shard: FeedShard, answer: JoinAnswer) {
        guard case .joining(let request, let attempts) = self.state else {
            // The client left while the feed answered.
            shard.detachIfUnused()
            return
        }
        var lookup: ReplayBuffer.Lookup
        switch answer {
        case .joined(let answered):
            lookup = answered
        case .closed:
            // The feed closed meanwhile (an on-demand template that lingered out): acquire it again.
            shard.detachIfUnused()
            guard attempts < 3 else {
                return self.refuse(
                    Self.unavailable(request, "feed unavailable\n"),
                    end: .refused,
                    reason: "feed_unavailable"
                )
            }
            self.join(request, attempts: attempts + 1)
            return
        case .upstreamRefused(let status):
            // A new template value the backend does not have: the client learns so, nothing retries.
            shard.detachIfUnused()
            let text = status == 410 ? "gone\n" : "not found\n"
            return self.refuse(
                ResponseHead.plain(HTTPResponseStatus(statusCode: status), text, headers: request.corsHeaders),
                end: .upstreamRefused,
                reason: "upstream_\(status)"
            )
        }
        if let filter = request.eventFilter { lookup = filter.apply(to: lookup) }
        let settings = request.target.definition.settings
        var head = ResponseHead.eventStream()
        head.headers += request.corsHeaders
        let replayFrom = StreamPrelude.replayStart(lookup)
        if lookup.resume == .gap, let replayFrom {
            head.headers.append(("Last-Event-ID", replayFrom))
        }
        self.gap = lookup.resume == .gap
        if let poll = request.poll {
            return self.startPoll(
                poll,
                request: request,
                head: head,
                lookup: lookup,
                replayFrom: replayFrom,
                shard: shard
            )
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
            filter: request.eventFilter,
            now: now
        )
        if self.grant != nil {
            subscriber.tracksEventIDs = true
            subscriber.lastEventID = request.resumeID
        }
        self.state = .streaming(subscriber, shard)
        shard.add(subscriber)
        subscriber.queue.writabilityChanged(isWritable: self.transport.isWritable, now: now)
        let framing = self.transport.framing
        subscriber.eventsSent = lookup.events.count
        if framing.isGzip {
            // The replay is this client's own: compressed for it, in fragments of the loop's deflater.
            if subscriber.tracksEventIDs, let id = lookup.events.last(where: { $0.id != nil })?.id {
                subscriber.lastEventID = id
            }
            let deflater = self.gateway.hub(for: self.loop).deflater
            for piece in GzipFragment.pieces(lookup.events, chunked: framing == .gzipChunked, deflater: deflater) {
                _ = subscriber.offer(piece.fragment, producedAt: now, now: now, replay: true)
            }
        } else {
            for event in lookup.events {
                if subscriber.tracksEventIDs, let id = event.id { subscriber.lastEventID = id }
                _ = subscriber.offer(framing.bytes(of: event), producedAt: now, now: now, replay: true)
            }
        }
        self.transport.flush()
        if let grant = self.grant {
            self.armAuthTimers(grant, request: request)
        }
    }

    /// Hands a poll request to its `PollExchange`, with its poll slot: the prelude carries `poll.retry`.
    private func startPoll(
        _ poll: PollSettings,
        request: StreamRequest,
        head: ResponseHead,
        lookup: ReplayBuffer.Lookup,
        replayFrom: String?,
        shard: FeedShard
    ) {
        var settings = request.target.definition.settings
        settings.retry = poll.retry
        settings.padding = false
        let exchange = PollExchange(
            gateway: self.gateway,
            transport: self.transport,
            loop: self.loop,
            poll: poll,
            gzip: request.gzip
        )
        // The exchange answers, so it writes the access log line.
        exchange.logged = self.logged
        exchange.gap = self.gap
        self.logged = nil
        self.state = .polling(exchange)
        self.slot = .none
        exchange.start(
            head: head,
            prelude: StreamPrelude.make(
                settings: settings,
                lookup: lookup,
                resumeID: request.resumeID,
                replayFrom: replayFrom,
                allocator: ByteBufferAllocator()
            ),
            lookup: lookup,
            filter: request.eventFilter,
            resumeID: request.resumeID,
            settings: settings,
            shard: shard
        )
    }

    // MARK: Credential expiry and re-checks

    /// Schedules what the grant asks for: `auth-expiring` `warn_before` ahead of `exp` (at once when less is
    /// left), the end at `exp`, and the re-checks.
    private func armAuthTimers(_ grant: AuthGrant, request: StreamRequest) {
        let expiry = request.target.definition.settings.auth.expiry
        guard (grant.expiresAt != nil && expiry.enforce) || grant.recheckAfter != nil else { return }
        let watch = CredentialWatch(for: self, loop: self.loop, gateway: self.gateway)
        self.credentialWatch = watch
        if let expiresAt = grant.expiresAt, expiry.enforce {
            watch.expire(at: expiresAt, warnBefore: expiry.warnBefore)
        }
        if let recheck = grant.recheckAfter, var authRequest = request.authRequest {
            authRequest.clientAddress = request.clientAddress
            watch.recheck(every: recheck, authRequest, feed: request.target.definition)
        }
    }

    private func cancelAuthTimers() {
        self.credentialWatch?.cancel()
        self.credentialWatch = nil
    }

    func credentialExpiring(at expiresAt: Date) {
        guard case .streaming(let subscriber, _) = self.state else { return }
        subscriber.offerNotice(AuthNotice.expiring(at: expiresAt, now: Date()))
    }

    /// The credential ran out: the stream ends with `auth-expired` carrying the last id this client was
    /// sent, so a new connection with a fresh credential resumes from there. A client that has not read
    /// what it was sent (bytes still queued) is closed without the notice: its browser resumes from the
    /// last id it did get.
    func credentialExpired(_ end: AccessLogEnd) {
        guard case .streaming(let subscriber, let shard) = self.state else { return }
        self.cancelAuthTimers()
        shard.remove(subscriber)
        self.state = .closed
        defer { self.logEnd(end, status: 200, events: subscriber.eventsSent) }
        if subscriber.queue.pendingCount == 0 && self.transport.isWritable {
            self.transport.writePayload(AuthNotice.expired(lastEventID: subscriber.lastEventID))
            self.transport.finish()
        } else {
            self.transport.abort()
        }
    }

    /// The transport's writability changed (channel watermarks, or HTTP/2 flow control).
    func writabilityChanged() {
        if case .streaming(let subscriber, _) = self.state {
            subscriber.writabilityChanged(isWritable: self.transport.isWritable, now: .now())
        }
    }

    /// The connection or stream is gone.
    func transportClosed() {
        self.cancelAuthTimers()
        switch self.state {
        case .streaming(let subscriber, let shard):
            shard.remove(subscriber)
            self.logEnd(.clientClosed, status: 200, events: subscriber.eventsSent)
        case .polling(let exchange):
            exchange.clientLeft()
        case .authorizing, .joining:
            if case .poll = self.slot { self.gateway.countPoll(.left) }
            // Gone before any answer: 499, as nginx logs a client that closed its request.
            self.logEnd(.clientClosed, status: 499, bytes: 0)
        case .closed:
            break
        }
        self.state = .closed
        self.releaseClientSlot()
    }

    func transportFailed(_ error: any Error) {
        switch self.state {
        case .streaming(let subscriber, _):
            self.logEnd(.error, status: 200, reason: AccessLogRecord.errorReason(error), events: subscriber.eventsSent)
        case .authorizing, .joining:
            self.logEnd(.error, status: 499, reason: AccessLogRecord.errorReason(error), bytes: 0)
        case .polling, .closed:
            break  // a waiting poll logs its client's leaving; a closed stream has its line
        }
    }

    private func releaseClientSlot() {
        switch self.slot {
        case .client:
            self.gateway.releaseClient()
            self.gateway.releaseAddress(self.clientAddress, count: 1)
        case .poll: self.gateway.releasePoll()
        case .none: break
        }
        self.slot = .none
    }

    // MARK: SubscriberSink

    func evict(_ reason: EvictionReason) {
        self.cancelAuthTimers()
        if case .streaming(let subscriber, _) = self.state {
            self.logEnd(AccessLogEnd(reason), status: 200, events: subscriber.eventsSent)
        }
        self.state = .closed  // the shard has already let go of the subscriber; nothing more is written
        self.transport.abort()
    }

    func close(_ reason: CloseReason) {
        self.cancelAuthTimers()
        if case .streaming(let subscriber, _) = self.state {
            self.logEnd(AccessLogEnd(reason), status: 200, events: subscriber.eventsSent)
        }
        self.state = .closed
        self.transport.finish()
    }
}
