import NIOCore
import NIOHTTP1
import SSE

import struct Foundation.Date

/// Several feeds on one response (`GET /multi?feed=/a&feed=/b`, SPEC §6a). Each feed is joined as for a
/// one-feed stream (its access gate, a `max_clients` slot, its own replay lookup and `Subscriber` in its
/// shard), and every subscriber writes through a `MultiLane` into this one transport. Events keep their
/// bytes (encode-once): an event with an id is written as `id: <composite>` followed by a slice of the
/// shared buffer after its own id line; an event without id is written as it is (the browser's
/// `lastEventId`, the last composite, is still right). Order holds within a feed, not across feeds.
///
/// The connection is one transport: each feed's queue gets `max_queue` divided by the number of feeds, so
/// the connection's total stays within one bound, and an eviction of any feed ends the whole connection.
///
/// In poll mode (SPEC §6a) the lanes write to one `PollExchange` instead of the transport: the replays of
/// every feed answer at once, else the first batch of any feed does (after `poll.gather`); the request
/// holds one `poll.max_waiting` slot and no `max_clients` slot.
final class MultiSession: SubscriberSink, ClientSession, CredentialWatcher {
    private enum State {
        case authorizing(pending: Int)
        case joining(pending: Int)
        case streaming
        /// A poll past its joins: the exchange answers it (and holds its poll slot).
        case polling(PollExchange)
        case closed
    }

    /// One requested feed while the session lives.
    private struct Member {
        var request: MultiRequest.Member
        var resumeID: String?
        var shard: FeedShard?
        var subscriber: Subscriber?
        var lane: MultiLane?
        var lookup: ReplayBuffer.Lookup?
        var attempts = 0
        /// What the feed's gate allowed, when it may end the stream (an `exp`, a re-check); nil: anonymous.
        var grant: AuthGrant?
    }

    private let gateway: GatewayContext
    private let transport: StreamTransport
    private let loop: EventLoop
    private let request: MultiRequest
    private var members: [Member]
    private var state: State
    /// The `max_clients` slots held (one per feed of a stream, none for a poll).
    private var slots: Int
    /// A `poll.max_waiting` slot held until the exchange takes it over.
    private var pollSlot: Bool
    /// The collector of a poll's answer, from the start: the lanes write to it.
    private let exchange: PollExchange?
    /// Each feed's last id sent to the client (request order), and the rewriting of `id:` lines.
    private var rewriter: CompositeIDRewriter
    /// The earliest `exp` among the grants and that feed's `warn_before`: one `auth-expiring`, then the end.
    private var expiry: (at: Date, warnBefore: TimeAmount)?
    /// The timers of the grants: the warning, the end at `expiry`, each feed's re-checks.
    private var credentialWatch: CredentialWatch?
    /// What the access log line is about, until it is written; nil when the log is off.
    private var logged: AccessLogSubject?

    /// Takes one `max_clients` slot and one slot of the client's address per feed, or none and says which
    /// 503 to answer when they are not all free.
    static func admission(
        _ request: MultiRequest,
        gateway: GatewayContext,
        transport: StreamTransport,
        loop: EventLoop
    ) -> SessionAdmission<MultiSession> {
        if gateway.draining {
            return .draining(
                retry: request.members.map(\.target.definition.settings.retry).min() ?? .seconds(3),
                corsHeaders: request.corsHeaders
            )
        }
        if request.poll != nil {
            // A poll compresses its whole body once (`PollExchange`), not as a stream.
            guard gateway.admitPoll() else {
                gateway.countPoll(.overCapacity)
                return .refused(Self.overCapacity(request), reason: "max_poll_waiting")
            }
            return .admitted(MultiSession(request: request, gateway: gateway, transport: transport, loop: loop))
        }
        var taken = 0
        while taken < request.members.count, gateway.admitClient() { taken += 1 }
        guard taken == request.members.count else {
            for _ in 0..<taken { gateway.releaseClient() }
            return .refused(Self.overCapacity(request), reason: "max_clients")
        }
        guard gateway.admitAddress(request.clientAddress, count: taken) else {
            for _ in 0..<taken { gateway.releaseClient() }
            let retry = request.members[0].target.definition.settings.retry
            let (head, body) = ResponseHead.plain(
                .serviceUnavailable,
                "too many streams from this address\n",
                headers: [("Retry-After", RequestRouter.jitteredRetryAfter(retry))] + request.corsHeaders
            )
            return .refused(head, body, reason: "max_clients_per_address")
        }
        var transport = transport
        if request.gzip {
            // Each client's composite ids differ: its stream is compressed as its own fragments.
            transport = GzipTransport(wrapping: transport, deflater: gateway.hub(for: loop).deflater)
        }
        return .admitted(MultiSession(request: request, gateway: gateway, transport: transport, loop: loop))
    }

    static func overCapacity(_ request: MultiRequest) -> (ResponseHead, String) {
        let retry = request.members[0].target.definition.settings.retry
        if request.poll != nil {
            return ResponseHead.plain(
                .serviceUnavailable,
                "too many poll requests\n",
                headers: [("Retry-After", RequestRouter.jitteredRetryAfter(retry))] + request.corsHeaders
            )
        }
        return ResponseHead.plain(
            .serviceUnavailable,
            "too many clients\n",
            headers: [("Retry-After", RequestRouter.retryAfter(retry))]
        )
    }

    private init(request: MultiRequest, gateway: GatewayContext, transport: StreamTransport, loop: EventLoop) {
        self.gateway = gateway
        self.transport = transport
        self.loop = loop
        self.request = request
        if let poll = request.poll {
            self.slots = 0
            self.pollSlot = true
            self.exchange = PollExchange(
                gateway: gateway,
                transport: transport,
                loop: loop,
                poll: poll,
                gzip: request.gzip
            )
        } else {
            self.slots = request.members.count
            self.pollSlot = false
            self.exchange = nil
        }
        self.rewriter = CompositeIDRewriter(
            ids: request.resume ?? CompositeID(feeds: request.members.count),
            maxLength: request.maxIDLength
        )
        self.members = request.members.enumerated().map { index, member in
            let id = request.resume?.ids[index]
            return Member(request: member, resumeID: (id?.isEmpty ?? true) ? nil : id)
        }
        self.state = .authorizing(pending: 0)
        self.logged = request.accessLogSubject
    }

    /// Asks every feed's gate (a refusal by any refuses the request), then joins every feed.
    func begin() {
        let gated = self.members.indices.compactMap { index -> (Int, AuthRequest, any FeedAuthorizer)? in
            let member = self.members[index].request
            guard var auth = member.authRequest,
                let authorizer = self.gateway.access.authorizer(forFeed: member.target.definition.name)
            else { return nil }
            auth.clientAddress = self.request.clientAddress
            return (index, auth, authorizer)
        }
        guard !gated.isEmpty else { return self.joinAll() }
        self.state = .authorizing(pending: gated.count)
        for (index, auth, authorizer) in gated {
            let template = self.members[index].request.target.definition.path
            let decided = authorizer.decision(for: auth, feedTemplate: template, on: self.loop)
            decided.assumeIsolated().whenSuccess { [weak self] decision in
                self?.authorized(decision, member: index)
            }
        }
    }

    private func authorized(_ decision: AuthDecision, member index: Int) {
        guard case .authorizing(let pending) = self.state else { return }
        let definition = self.members[index].request.target.definition
        self.gateway.access.outcomes.record(feed: definition.name, decision: decision)
        guard case .allowed(let grant) = decision else {
            let (end, reason) = AccessRefusal.logged(decision)
            return self.refuse(
                AccessRefusal.response(
                    for: decision,
                    retryAfter: RequestRouter.jitteredRetryAfter(definition.settings.retry),
                    extraHeaders: self.request.corsHeaders
                ),
                end: end,
                reason: reason
            )
        }
        if !grant.anonymous { self.members[index].grant = grant }
        let settings = definition.settings.auth.expiry
        if let expiresAt = grant.expiresAt, settings.enforce {
            // The earliest; at the same `exp` (one token for all), the longest warning.
            let current = self.expiry ?? (.distantFuture, .zero)
            if expiresAt < current.at || (expiresAt == current.at && settings.warnBefore > current.warnBefore) {
                self.expiry = (expiresAt, settings.warnBefore)
            }
        }
        if pending > 1 {
            self.state = .authorizing(pending: pending - 1)
        } else {
            self.joinAll()
        }
    }

    private func joinAll() {
        self.state = .joining(pending: self.members.count)
        for index in self.members.indices {
            self.join(index)
            if case .closed = self.state { return }
        }
    }

    private func join(_ index: Int) {
        let target = self.members[index].request.target
        let feed: Feed
        switch self.gateway.registry.acquire(
            target,
            clientAddress: self.request.clientAddress,
            rates: self.gateway.limits.newFeedRates
        ) {
        case .feed(let acquired):
            feed = acquired
        case .tooManyFeeds:
            return self.refuse(
                self.unavailable("feed \(target.key) unavailable\n", target: target),
                end: .refused,
                reason: "max_feeds"
            )
        case .tooManyNewFeeds(let perAddress):
            return self.refuse(
                self.unavailable("feed \(target.key) unavailable\n", target: target),
                end: .refused,
                reason: perAddress ? "new_feeds_per_address" : "new_feeds_per_second"
            )
        case .unavailable:
            return self.refuse(
                self.unavailable("feed \(target.key) unavailable\n", target: target),
                end: .refused,
                reason: "feed_unavailable"
            )
        }
        self.gateway.hub(for: self.loop).subscribe(feed: feed, resumeID: self.members[index].resumeID) {
            [weak self] shard, answer in
            guard let self else { return shard.detachIfUnused() }
            self.joined(index, shard: shard, answer: answer)
        }
    }

    private func unavailable(_ text: String, target: FeedRegistry.Target) -> (ResponseHead, String) {
        let retry = target.definition.settings.retry
        return ResponseHead.plain(
            .serviceUnavailable,
            text,
            headers: [("Retry-After", RequestRouter.jitteredRetryAfter(retry))] + self.request.corsHeaders
        )
    }

    private func joined(_ index: Int, shard: FeedShard, answer: JoinAnswer) {
        guard case .joining(let pending) = self.state else { return shard.detachIfUnused() }
        let target = self.members[index].request.target
        switch answer {
        case .closed:
            shard.detachIfUnused()
            guard self.members[index].attempts < 3 else {
                return self.refuse(
                    self.unavailable("feed \(target.key) unavailable\n", target: target),
                    end: .refused,
                    reason: "feed_unavailable"
                )
            }
            self.members[index].attempts += 1
            return self.join(index)
        case .upstreamRefused(let status):
            shard.detachIfUnused()
            let text = status == 410 ? "gone: feed \(target.key)\n" : "not found: feed \(target.key)\n"
            return self.refuse(
                ResponseHead.plain(HTTPResponseStatus(statusCode: status), text, headers: self.request.corsHeaders),
                end: .upstreamRefused,
                reason: "upstream_\(status)"
            )
        case .joined(var lookup):
            // Filtered as a one-feed stream's: the replay holds only the asked types, `lastSequence` stays.
            if let filter = self.request.eventFilter { lookup = filter.apply(to: lookup) }
            let settings = target.definition.settings
            var limits = settings.client
            limits.maxQueue = max(1, limits.maxQueue / self.members.count)
            let lane = MultiLane(session: self, index: index, output: self.exchange ?? self.transport)
            let now = NIODeadline.now()
            let subscriber = Subscriber(
                sink: self,
                transport: lane,
                limits: limits,
                lastSequence: lookup.lastSequence,
                resumeID: self.members[index].resumeID,
                filter: self.request.eventFilter,
                now: now
            )
            subscriber.pollsOnce = self.exchange != nil
            subscriber.feedLabel = target.key
            // Not started: the replay and what the feed delivers before the head is written wait in the queue.
            subscriber.queue.writabilityChanged(isWritable: false, now: now)
            shard.add(subscriber)
            subscriber.eventsSent = lookup.events.count
            if self.exchange == nil {
                for event in lookup.events {
                    _ = subscriber.offer(lane.framing.bytes(of: event), producedAt: now, now: now, replay: true)
                }
            }
            self.members[index].shard = shard
            self.members[index].subscriber = subscriber
            self.members[index].lane = lane
            self.members[index].lookup = lookup
            if pending > 1 {
                self.state = .joining(pending: pending - 1)
            } else {
                self.start()
            }
        }
    }

    /// Every feed joined: the head, one prelude (`retry:`, each feed's gap signal naming it), then each
    /// feed's replay and live events as the transport takes them; for a poll, the exchange's answer.
    private func start() {
        // The composite id after the replays (or the id-only start) must fit; later ids are kept within it.
        let idOnly = self.idOnlyStart()
        var after = idOnly ?? self.rewriter.ids
        for (index, member) in self.members.enumerated() {
            if let id = member.lookup?.events.last(where: { $0.id != nil })?.id { after.ids[index] = id }
        }
        let length = after.encoded.utf8.count
        if length > self.request.maxIDLength {
            let text = MultiRequest.overLength(length, bound: self.request.maxIDLength, feeds: self.members.count)
            return self.refuse(
                ResponseHead.plain(.badRequest, text, headers: self.request.corsHeaders),
                end: .refused,
                reason: "resume_id_too_long"
            )
        }
        var head = ResponseHead.eventStream()
        head.headers += self.request.corsHeaders
        if let exchange = self.exchange, let poll = self.request.poll {
            return self.startPoll(exchange, poll: poll, head: head, idOnly: idOnly)
        }
        self.state = .streaming
        self.transport.writeHead(head)
        var settings = self.members[0].request.target.definition.settings
        settings.padding = self.members.contains(where: { $0.request.target.definition.settings.padding })
        self.transport.writePayload(self.prelude(settings))
        let now = NIODeadline.now()
        for member in self.members {
            member.lane?.started = true
            member.subscriber?.writabilityChanged(isWritable: self.transport.isWritable, now: now)
        }
        self.transport.flush()
        self.watchCredentials()
    }

    /// A poll without a resume id and with nothing replayed: every feed's last id, for an id-only block
    /// (the browser's `lastEventId` moves there without an event). Nil otherwise, or when no feed has an id.
    private func idOnlyStart() -> CompositeID? {
        guard self.exchange != nil,
            self.members.allSatisfy({ ($0.resumeID ?? "").isEmpty && ($0.lookup?.events.isEmpty ?? true) })
        else { return nil }
        let lastIDs = CompositeID(ids: self.members.map { $0.lookup?.lastID ?? "" })
        return lastIDs.ids.contains(where: { !$0.isEmpty }) ? lastIDs : nil
    }

    /// Hands a poll to its exchange: the prelude with `poll.retry`, every feed's replay with composite ids or
    /// the id-only start, answered at once; else the lanes start and the first batch of any feed answers.
    private func startPoll(_ exchange: PollExchange, poll: PollSettings, head: ResponseHead, idOnly: CompositeID?) {
        var settings = self.members[0].request.target.definition.settings
        settings.retry = poll.retry
        settings.padding = false
        var body = self.prelude(settings)
        var result = PollResult.empty
        for (index, member) in self.members.enumerated() {
            for event in member.lookup?.events ?? [] {
                result = .events
                if let (idLine, rest) = self.rewriter.rewrite(event.payload, from: index, framing: .raw) {
                    body.writeImmutableBuffer(idLine)
                    body.writeImmutableBuffer(rest)
                } else {
                    body.writeImmutableBuffer(event.payload)
                }
            }
        }
        if let idOnly, self.rewriter.replaceAll(idOnly) {
            SSESerializer.write(ServerSentEvent(id: idOnly.encoded, type: nil, data: nil), into: &body)
            result = .id
        }
        self.state = .polling(exchange)
        self.pollSlot = false  // the exchange frees it when it answers or the client leaves
        // The exchange answers, so it writes the access log line.
        exchange.logged = self.logged
        self.logged = nil
        let clients = self.members.compactMap { member in
            member.subscriber.flatMap { subscriber in member.shard.map { (subscriber: subscriber, shard: $0) } }
        }
        guard exchange.settle(head: head, body: body, result: result, waitingOn: clients) else { return }
        // What the feeds delivered during the joins goes to the exchange now: it is a batch.
        let now = NIODeadline.now()
        for member in self.members {
            member.lane?.started = true
            member.subscriber?.writabilityChanged(isWritable: true, now: now)
        }
    }

    /// `retry:` (jittered as at every stream start), padding, and each feed's gap signals.
    private func prelude(_ settings: FeedSettings) -> ByteBuffer {
        let gaps = self.members.compactMap { member -> MultiPrelude.Gap? in
            guard let lookup = member.lookup, lookup.resume == .gap else { return nil }
            return MultiPrelude.Gap(
                feed: member.request.target.key,
                resumeID: member.resumeID ?? "",
                replayFrom: StreamPrelude.replayStart(lookup) ?? "",
                gapEvent: member.request.target.definition.settings.replay.gapEvent
            )
        }
        return MultiPrelude.make(
            retryMilliseconds: StreamPrelude.startRetryMilliseconds(settings),
            padding: settings.padding,
            gaps: gaps
        )
    }

    // MARK: Credential expiry and re-checks

    /// As a one-feed stream's (`CredentialWatch`), once per connection: `auth-expiring` ahead of the earliest
    /// `exp` among the feeds, the end then, and each forward-auth feed's re-checks.
    private func watchCredentials() {
        let rechecked = self.members.filter { $0.grant?.recheckAfter != nil && $0.request.authRequest != nil }
        guard self.expiry != nil || !rechecked.isEmpty else { return }
        let watch = CredentialWatch(for: self, loop: self.loop, gateway: self.gateway)
        self.credentialWatch = watch
        if let expiry = self.expiry {
            watch.expire(at: expiry.at, warnBefore: expiry.warnBefore)
        }
        for member in rechecked {
            guard let interval = member.grant?.recheckAfter, var authRequest = member.request.authRequest else {
                continue
            }
            authRequest.clientAddress = self.request.clientAddress
            watch.recheck(every: interval, authRequest, feed: member.request.target.definition)
        }
    }

    /// One notice for the connection, through the first feed's queue (behind what it still holds).
    func credentialExpiring(at expiresAt: Date) {
        guard case .streaming = self.state, let subscriber = self.members[0].subscriber else { return }
        subscriber.offerNotice(AuthNotice.expiring(at: expiresAt, now: Date()))
    }

    /// A credential ran out or a re-check refused: the stream ends with `auth-expired` carrying the composite
    /// id last sent, so a new connection with fresh credentials resumes every feed from there. A client that
    /// has not read what it was sent (bytes still queued in any feed) is closed without the notice.
    func credentialExpired(_ end: AccessLogEnd) {
        guard case .streaming = self.state else { return }
        let drained = self.members.allSatisfy { ($0.subscriber?.queue.pendingCount ?? 0) == 0 }
        self.logEnd(end, status: 200, events: self.eventsSent, bytes: self.transport.bytesWritten)
        self.detachAll()
        self.state = .closed
        guard drained && self.transport.isWritable else { return self.transport.abort() }
        let ids = self.rewriter.ids
        let lastEventID = ids.ids.allSatisfy(\.isEmpty) ? nil : ids.encoded
        self.transport.writePayload(AuthNotice.expired(lastEventID: lastEventID))
        self.transport.finish()
    }

    // MARK: Writing through the lanes

    /// A buffer of a feed, through its lane: an event with an id goes out with the composite id in place of
    /// its own (the rest of the event is a slice of the shared buffer); anything else as it is.
    func write(_ bytes: ByteBuffer, through lane: MultiLane) {
        guard let (idLine, rest) = self.rewriter.rewrite(bytes, from: lane.index, framing: lane.framing) else {
            return lane.output.writeShared(bytes)
        }
        lane.output.writeShared(idLine)
        lane.output.writeShared(rest)
    }

    // MARK: Ending

    private func refuse(_ response: (ResponseHead, String), end: AccessLogEnd, reason: String?) {
        self.detachAll()
        self.state = .closed
        self.releaseSlots()
        self.logEnd(end, status: Int(response.0.status.code), reason: reason, events: 0, bytes: response.1.utf8.count)
        self.transport.respond(response.0, body: response.1)
    }

    /// Events handed to the client over all feeds (replays included); read before `detachAll`.
    private var eventsSent: Int {
        self.members.reduce(0) { $0 + ($1.subscriber?.eventsSent ?? 0) }
    }

    /// Writes the access log line of this request (once; nothing when the log is off).
    private func logEnd(_ end: AccessLogEnd, status: Int, reason: String? = nil, events: Int, bytes: Int) {
        guard let subject = self.logged else { return }
        self.logged = nil
        let gap = self.members.contains { $0.lookup?.resume == .gap }
        self.gateway.accessLog.write(
            subject.record(status: status, end: end, reason: reason, gap: gap, events: events, bytes: bytes)
        )
    }

    private func detachAll() {
        self.credentialWatch?.cancel()
        self.credentialWatch = nil
        for index in self.members.indices {
            if let subscriber = self.members[index].subscriber, let shard = self.members[index].shard {
                shard.remove(subscriber)
            }
            self.members[index].subscriber = nil
            self.members[index].shard = nil
        }
    }

    private func releaseSlots() {
        for _ in 0..<self.slots { self.gateway.releaseClient() }
        if self.slots > 0 { self.gateway.releaseAddress(self.request.clientAddress, count: self.slots) }
        self.slots = 0
        if self.pollSlot { self.gateway.releasePoll() }
        self.pollSlot = false
    }

    func writabilityChanged() {
        guard case .streaming = self.state else { return }
        let now = NIODeadline.now()
        for member in self.members {
            member.subscriber?.writabilityChanged(isWritable: self.transport.isWritable, now: now)
        }
    }

    func transportFailed(_ error: any Error) {
        switch self.state {
        case .streaming:
            self.logEnd(
                .error,
                status: 200,
                reason: AccessLogRecord.errorReason(error),
                events: self.eventsSent,
                bytes: self.transport.bytesWritten
            )
        case .polling(let exchange):
            exchange.clientLeft()
        case .authorizing, .joining:
            self.logEnd(.error, status: 499, reason: AccessLogRecord.errorReason(error), events: 0, bytes: 0)
        case .closed:
            break
        }
    }

    func transportClosed() {
        switch self.state {
        case .streaming:
            self.logEnd(.clientClosed, status: 200, events: self.eventsSent, bytes: self.transport.bytesWritten)
        case .polling(let exchange):
            exchange.clientLeft()
        case .authorizing, .joining:
            if self.pollSlot { self.gateway.countPoll(.left) }
            // Gone before any answer: 499, as nginx logs a client that closed its request.
            self.logEnd(.clientClosed, status: 499, events: 0, bytes: 0)
        case .closed:
            break
        }
        self.detachAll()
        self.state = .closed
        self.releaseSlots()
    }

    // MARK: SubscriberSink

    /// One feed's subscriber went over its bound: the connection is one transport, so it ends.
    func evict(_ reason: EvictionReason) {
        if case .polling(let exchange) = self.state { return exchange.evict(reason) }
        guard case .streaming = self.state else { return }
        self.logEnd(AccessLogEnd(reason), status: 200, events: self.eventsSent, bytes: self.transport.bytesWritten)
        self.detachAll()
        self.state = .closed
        self.transport.abort()
    }

    /// A feed went away or the gateway drains: the connection ends cleanly; the browser comes back.
    func close(_ reason: CloseReason) {
        switch self.state {
        case .closed:
            return
        case .polling(let exchange):
            exchange.close(reason)
        case .streaming:
            self.logEnd(
                AccessLogEnd(reason),
                status: 200,
                events: self.eventsSent,
                bytes: self.transport.bytesWritten
            )
            self.detachAll()
            self.state = .closed
            self.transport.finish()
        case .authorizing, .joining:
            self.refuse(
                ResponseHead.plain(.serviceUnavailable, "closing\n", headers: [("Retry-After", "1")]),
                end: AccessLogEnd(reason),
                reason: nil
            )
        }
    }
}
