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
final class MultiSession: SubscriberSink, ClientSession {
    private enum State {
        case authorizing(pending: Int)
        case joining(pending: Int)
        case streaming
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
    }

    private let gateway: GatewayContext
    private let transport: StreamTransport
    private let loop: EventLoop
    private let request: MultiRequest
    private var members: [Member]
    private var state: State
    private var slots: Int
    /// Each feed's last id sent to the client (request order); what the composite id encodes.
    private var ids: CompositeID
    /// The earliest `exp` among the grants: the stream ends then (each gate is asked again on reconnect).
    private var expiresAt: Date?
    private var expiryTimer: Scheduled<Void>?
    /// What the access log line is about, until it is written; nil when the log is off.
    private var logged: AccessLogSubject?

    /// What `admission` decided.
    enum Admission {
        case admitted(MultiSession)
        /// The 503 to answer (`max_clients`, `max_clients_per_address`).
        /// The reason is the limit's name, for the access log.
        case refused(ResponseHead, String, reason: String)
    }

    /// Takes one `max_clients` slot and one slot of the client's address per feed, or none and says which
    /// 503 to answer when they are not all free.
    static func admission(
        _ request: MultiRequest,
        gateway: GatewayContext,
        transport: StreamTransport,
        loop: EventLoop
    ) -> Admission {
        var taken = 0
        while taken < request.members.count, gateway.admitClient() { taken += 1 }
        guard taken == request.members.count else {
            for _ in 0..<taken { gateway.releaseClient() }
            let (head, body) = Self.overCapacity(request)
            return .refused(head, body, reason: "max_clients")
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
        if request.gzip, let gzip = try? GzipTransport(wrapping: transport) {
            transport = gzip
        }
        return .admitted(MultiSession(request: request, gateway: gateway, transport: transport, loop: loop))
    }

    static func overCapacity(_ request: MultiRequest) -> (ResponseHead, String) {
        let retry = request.members[0].target.definition.settings.retry
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
        self.slots = request.members.count
        self.ids = request.resume ?? CompositeID(feeds: request.members.count)
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
        if let expiresAt = grant.expiresAt, definition.settings.auth.expiry.enforce {
            self.expiresAt = min(expiresAt, self.expiresAt ?? expiresAt)
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
        case .joined(let lookup):
            let settings = target.definition.settings
            var limits = settings.client
            limits.maxQueue = max(1, limits.maxQueue / self.members.count)
            let lane = MultiLane(session: self, index: index, transport: self.transport)
            let now = NIODeadline.now()
            let subscriber = Subscriber(
                sink: self,
                transport: lane,
                limits: limits,
                lastSequence: lookup.lastSequence,
                resumeID: self.members[index].resumeID,
                now: now
            )
            // Not started: the replay and what the feed delivers before the head is written wait in the queue.
            subscriber.queue.writabilityChanged(isWritable: false, now: now)
            shard.add(subscriber)
            subscriber.eventsSent = lookup.events.count
            for event in lookup.events {
                _ = subscriber.offer(lane.framing.bytes(of: event), producedAt: now, now: now, replay: true)
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
    /// feed's replay and live events as the transport takes them.
    private func start() {
        // The composite id after the replays must fit; ids only grow by what the feeds send later.
        var after = self.ids
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
        self.state = .streaming
        var head = ResponseHead.eventStream()
        head.headers += self.request.corsHeaders
        self.transport.writeHead(head)
        self.transport.writePayload(self.prelude())
        let now = NIODeadline.now()
        for member in self.members {
            member.lane?.started = true
            member.subscriber?.writabilityChanged(isWritable: self.transport.isWritable, now: now)
        }
        self.transport.flush()
        if let expiresAt = self.expiresAt {
            // The stream ends when the first credential runs out; the browser comes back through every gate.
            let left = TimeAmount.nanoseconds(Int64(max(0, expiresAt.timeIntervalSinceNow) * 1e9))
            self.expiryTimer = self.loop.assumeIsolated().scheduleTask(in: left) { [weak self] in
                self?.end(.authExpired)
            }
        }
    }

    private func prelude() -> ByteBuffer {
        let first = self.members[0].request.target.definition.settings
        var buffer = ByteBuffer()
        SSESerializer.writeRetry(milliseconds: first.retry.nanoseconds / 1_000_000, into: &buffer)
        if self.members.contains(where: { $0.request.target.definition.settings.padding }) {
            SSESerializer.writeComment(String(repeating: " ", count: 2048), into: &buffer)
        }
        buffer.writeStaticString("\n")
        for member in self.members {
            guard let lookup = member.lookup, lookup.resume == .gap else { continue }
            let feed = member.request.target.key
            let from = StreamPrelude.replayStart(lookup) ?? ""
            let resumeID = member.resumeID ?? ""
            SSESerializer.writeComment(
                "gap \(feed): last event id \(Self.printable(resumeID)) is not buffered; replaying from \(Self.printable(from))",
                into: &buffer
            )
            buffer.writeStaticString("\n")
            if member.request.target.definition.settings.replay.gapEvent {
                let data =
                    "{\"feed\":\(JSONText.string(feed)),\"lastEventId\":\(JSONText.string(resumeID)),"
                    + "\"replayFrom\":\(JSONText.string(from))}"
                SSESerializer.write(ServerSentEvent(id: nil, type: "gap", data: data), into: &buffer)
            }
        }
        return buffer
    }

    private static func printable(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 ? "?" : Character($0) }.prefix(200))
    }

    // MARK: Writing through the lanes

    /// A buffer of feed `index` in `framing`'s form: an event with an id goes out with the composite id in
    /// place of its own (the rest of the event is a slice of the shared buffer); anything else as it is.
    func write(_ bytes: ByteBuffer, from index: Int, framing: StreamFraming) {
        var payloadStart = bytes.readerIndex
        if framing == .chunked {
            guard let lineEnd = Self.firstIndex(of: UInt8(ascii: "\n"), in: bytes, from: payloadStart, limit: 20)
            else { return self.transport.writeShared(bytes) }
            payloadStart = lineEnd + 1
        }
        guard bytes.getString(at: payloadStart, length: 3) == "id:",
            let idEnd = Self.firstIndex(of: UInt8(ascii: "\n"), in: bytes, from: payloadStart, limit: Int.max)
        else { return self.transport.writeShared(bytes) }
        var valueStart = payloadStart + 3
        if bytes.getInteger(at: valueStart, as: UInt8.self) == UInt8(ascii: " ") { valueStart += 1 }
        let id = bytes.getString(at: valueStart, length: idEnd - valueStart) ?? ""
        let previous = self.ids.ids[index]
        self.ids.ids[index] = id
        var composite = self.ids.encoded
        if composite.utf8.count > self.request.maxIDLength {
            // Over the bound a browser could not send it back: keep the last composite that fit (a resume
            // from it may repeat events of this feed, never skip one).
            self.ids.ids[index] = previous
            composite = self.ids.encoded
        }
        let restStart = idEnd + 1
        let rest = bytes.getSlice(at: restStart, length: bytes.writerIndex - restStart)!
        var head = ByteBuffer()
        let idLineLength = 5 + composite.utf8.count
        if framing == .chunked {
            // The rest ends with the chunk's CRLF; the new chunk holds the id line and the rest of the event.
            let length = idLineLength + rest.readableBytes - 2
            head.writeString(String(length, radix: 16))
            head.writeStaticString("\r\n")
        }
        head.writeStaticString("id: ")
        head.writeString(composite)
        head.writeStaticString("\n")
        self.transport.writeShared(head)
        self.transport.writeShared(rest)
    }

    private static func firstIndex(of byte: UInt8, in buffer: ByteBuffer, from start: Int, limit: Int) -> Int? {
        let end = limit < buffer.writerIndex - start ? start + limit : buffer.writerIndex
        guard start < end else { return nil }
        return buffer.withUnsafeReadableBytes { raw -> Int? in
            let base = buffer.readerIndex
            for offset in (start - base)..<(end - base) where raw[offset] == byte { return base + offset }
            return nil
        }
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
        self.expiryTimer?.cancel()
        self.expiryTimer = nil
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
        case .authorizing, .joining:
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
        guard case .streaming = self.state else { return }
        self.logEnd(AccessLogEnd(reason), status: 200, events: self.eventsSent, bytes: self.transport.bytesWritten)
        self.detachAll()
        self.state = .closed
        self.transport.abort()
    }

    /// A feed went away or the gateway drains: the connection ends cleanly; the browser comes back.
    func close(_ reason: CloseReason) {
        self.end(AccessLogEnd(reason))
    }

    /// Ends the stream cleanly (`close`, or the first credential's `exp`), or refuses a stream not started.
    private func end(_ end: AccessLogEnd) {
        switch self.state {
        case .closed:
            return
        case .streaming:
            self.logEnd(end, status: 200, events: self.eventsSent, bytes: self.transport.bytesWritten)
            self.detachAll()
            self.state = .closed
            self.transport.finish()
        case .authorizing, .joining:
            self.refuse(
                ResponseHead.plain(.serviceUnavailable, "closing\n", headers: [("Retry-After", "1")]),
                end: end,
                reason: nil
            )
        }
    }
}
