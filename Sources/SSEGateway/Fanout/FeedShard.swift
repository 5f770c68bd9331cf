import NIOConcurrencyHelpers
import NIOCore
import SSE

/// The clients of one feed that live on one event loop. The feed sends each batch once to each shard
/// (one cross-loop hop per loop, not per client); the shard writes the shared buffers to its clients
/// and flushes each client once per batch. Touched only on `loop`: the feed holds it through a
/// `ShardLink` (its inbox and a `NIOLoopBound` of it).
final class FeedShard {
    let feed: Feed
    let hub: LoopHub
    let counters: DeliveryCounters
    private(set) var settings: FeedSettings
    private(set) var subscribers: [Subscriber] = []
    /// Evictions of the current pass, closed after iterating (closing may re-enter `remove`).
    private var evicted: [(Subscriber, EvictionReason)] = []
    /// Subscribes under way (the feed's answer not yet back): the shard must stay attached meanwhile.
    var pendingJoins = 0
    private var tickInterval: TimeAmount
    /// Batches and join answers sent from the feed's loop and not handled yet (see `ShardInbox`).
    private let inbox = ShardInbox()
    private var nextTick = NIODeadline.uptimeNanoseconds(0)
    /// The newest event with a non-empty id that this shard delivered, for the position marks of filtered
    /// clients (`positionMark`).
    private var newestID: (sequence: Int64, id: String)?

    init(feed: Feed, hub: LoopHub, counters: DeliveryCounters) {
        self.feed = feed
        self.hub = hub
        self.counters = counters
        let settings = feed.sharedDefinition.settings
        self.settings = settings
        self.tickInterval = LoopHub.tickInterval(keepalive: settings.keepalive, maxLag: settings.client.maxLag)
    }

    var loop: EventLoop { self.hub.loop }

    /// The key of this shard in its feed (`ShardLink.id`).
    var linkID: ObjectIdentifier { ObjectIdentifier(self.inbox) }

    /// The feed's handle on this shard (call on `loop`).
    var link: ShardLink {
        ShardLink(loop: self.loop, inbox: self.inbox, shard: NIOLoopBound(self, eventLoop: self.loop))
    }
    var isEmpty: Bool { self.subscribers.isEmpty }

    func add(_ subscriber: Subscriber) {
        self.loop.preconditionInEventLoop()
        subscriber.shardIndex = self.subscribers.count
        self.subscribers.append(subscriber)
        self.counters.stats.clients += 1
    }

    /// Removes a client (idempotent). The last one out detaches the shard from the feed.
    func remove(_ subscriber: Subscriber) {
        let index = subscriber.shardIndex
        guard index >= 0, index < self.subscribers.count, self.subscribers[index] === subscriber else { return }
        let last = self.subscribers.removeLast()
        if last !== subscriber {
            self.subscribers[index] = last
            last.shardIndex = index
        }
        subscriber.shardIndex = -1
        self.counters.stats.clients -= 1
        self.detachIfUnused()
    }

    /// Detaches from the feed once no client is here and none is on its way in.
    func detachIfUnused() {
        if self.subscribers.isEmpty && self.pendingJoins == 0 {
            self.hub.shardBecameEmpty(self)
        }
    }

    /// Runs what the feed's loop posted (`ShardLink.post`, `ShardLink.postInOrder`): the batches queued
    /// before a join answer go out before it, those after it after it.
    fileprivate func drainInbox() {
        let items = self.inbox.takeAll()
        var pending: [[EncodedEvent]] = []
        func flushPending() {
            if pending.count == 1 {
                self.deliver(pending[0])
            } else if !pending.isEmpty {
                self.deliver(Array(pending.joined()))
            }
            pending.removeAll()
        }
        for item in items {
            switch item {
            case .batch(let batch):
                pending.append(batch)
            case .call(let body):
                flushPending()
                body()
            }
        }
        flushPending()
    }

    /// Writes a batch to every client that does not have it yet, then flushes each once (an HTTP/2
    /// connection once for all its streams: `DeferredFlushes`).
    func deliver(_ batch: [EncodedEvent]) {
        self.hub.deferredFlushes.run { self.write(batch) }
    }

    private func write(_ batch: [EncodedEvent]) {
        let now = NIODeadline.now()
        var deliveries = 0
        var bytes = 0
        var fragments = BatchFragments()
        for subscriber in self.subscribers {
            let framing = subscriber.framing
            if framing.isGzip {
                let (count, size) = self.writeCompressed(batch, to: subscriber, fragments: &fragments, now: now)
                deliveries += count
                bytes += size
                continue
            }
            let filter = subscriber.filter
            for event in batch where event.sequence > subscriber.lastSequence {
                subscriber.lastSequence = event.sequence
                // A filtered client skips the shared buffer (no copy); an unfiltered one pays one branch.
                if let filter {
                    guard filter.admits(event) else { continue }
                    // Its browser now resumes from here: no position mark needed for it (`positionMark`).
                    if event.id != nil { subscriber.markedSequence = event.sequence }
                }
                if subscriber.tracksEventIDs, let id = event.id { subscriber.lastEventID = id }
                let buffer = framing.bytes(of: event)
                if let reason = subscriber.offer(buffer, producedAt: event.receivedAt, now: now) {
                    self.evicted.append((subscriber, reason))
                    break
                }
                deliveries += 1
                bytes += buffer.readableBytes
                subscriber.eventsSent += 1
            }
            subscriber.flushIfNeeded()
        }
        self.counters.stats.deliveries += deliveries
        self.counters.stats.bytesOut += bytes
        if let newest = batch.last(where: { $0.id?.isEmpty == false }), let id = newest.id {
            self.newestID = (newest.sequence, id)
        }
        self.closeEvicted()
    }

    /// A gzip client gets a batch as fragments (`GzipPiece`s): those compressed once for every gzip client
    /// that takes the whole batch, or, when it takes part of it (its replay covered the start, or its filter
    /// skips events), its own. Returns the events delivered and the bytes written.
    private func writeCompressed(
        _ batch: [EncodedEvent],
        to subscriber: Subscriber,
        fragments: inout BatchFragments,
        now: NIODeadline
    ) -> (deliveries: Int, bytes: Int) {
        guard let first = batch.first, let last = batch.last, last.sequence > subscriber.lastSequence else {
            return (0, 0)
        }
        let chunked = subscriber.framing == .gzipChunked
        let pieces: [GzipPiece]
        if first.sequence > subscriber.lastSequence && subscriber.filter == nil {
            subscriber.lastSequence = last.sequence
            if subscriber.tracksEventIDs, let id = batch.last(where: { $0.id != nil })?.id {
                subscriber.lastEventID = id
            }
            pieces = fragments.whole(batch, chunked: chunked, deflater: self.hub.deflater)
        } else {
            var taken: [EncodedEvent] = []
            for event in batch where event.sequence > subscriber.lastSequence {
                subscriber.lastSequence = event.sequence
                if let filter = subscriber.filter {
                    guard filter.admits(event) else { continue }
                    if event.id != nil { subscriber.markedSequence = event.sequence }
                }
                if subscriber.tracksEventIDs, let id = event.id { subscriber.lastEventID = id }
                taken.append(event)
            }
            pieces = GzipFragment.pieces(taken, chunked: chunked, deflater: self.hub.deflater)
        }
        var deliveries = 0
        var bytes = 0
        for piece in pieces {
            // Each piece goes through the queue on its own: once the channel turns unwritable, the rest wait
            // there, counted against max_queue and max_lag.
            if let reason = subscriber.offer(piece.fragment, producedAt: piece.producedAt, now: now) {
                self.evicted.append((subscriber, reason))
                break
            }
            deliveries += piece.events
            bytes += piece.fragment.readableBytes
        }
        subscriber.eventsSent += deliveries
        subscriber.flushIfNeeded()
        return (deliveries, bytes)
    }

    /// The upstream did not resume after `seed` (`Feed.upstreamDidNotResume`): the clients here that
    /// resumed from it are told so before the next batch (`StreamPrelude.gapNotice`, framed like a keepalive:
    /// not an event, never in the ring); a client of several feeds on one connection gets the notice naming
    /// this feed (`Subscriber.feedLabel`).
    func tellGap(after seed: String, next: String) {
        self.hub.deferredFlushes.run {
            let now = NIODeadline.now()
            let allocator = ByteBufferAllocator()
            let plain = StreamPrelude.gapNotice(settings: self.settings, lastEventID: seed, next: next)
            var named: [String: ByteBuffer] = [:]
            for subscriber in self.subscribers where subscriber.resumeID == seed && !subscriber.isEvicted {
                var notice = plain
                if let feed = subscriber.feedLabel {
                    notice =
                        named[feed]
                        ?? StreamPrelude.gapNotice(settings: self.settings, lastEventID: seed, next: next, feed: feed)
                    named[feed] = notice
                }
                let buffer = subscriber.framing.frame(notice, allocator: allocator)
                if let reason = subscriber.offer(buffer, producedAt: now, now: now) {
                    self.evicted.append((subscriber, reason))
                    continue
                }
                subscriber.flushIfNeeded()
                self.counters.stats.bytesOut += buffer.readableBytes
            }
            self.closeEvicted()
        }
    }

    /// The loop's coarse timer: keepalive comments for idle clients and the lag check for blocked ones.
    /// The loop ticks at the pace of its most demanding feed; each shard only does its walk at its own.
    func tick(now: NIODeadline, keepalive: (StreamFraming) -> ByteBuffer) {
        guard now >= self.nextTick else { return }
        self.nextTick = now + self.tickInterval
        self.hub.deferredFlushes.run { self.keepaliveAndLagPass(now: now, keepalive: keepalive) }
    }

    private func keepaliveAndLagPass(now: NIODeadline, keepalive: (StreamFraming) -> ByteBuffer) {
        let idleBefore = now - self.settings.keepalive
        for subscriber in self.subscribers {
            if case .evicted = subscriber.queue.state { continue }
            if let reason = subscriber.queue.checkLag(now: now, heldSince: subscriber.transport.heldSince()) {
                self.evicted.append((subscriber, reason))
                continue
            }
            if case .writable = subscriber.queue.state, subscriber.lastWriteAt <= idleBefore, !subscriber.pollsOnce {
                let buffer = self.positionMark(for: subscriber) ?? keepalive(subscriber.framing)
                _ = subscriber.offer(buffer, producedAt: now, now: now)
                subscriber.flushIfNeeded()
                self.counters.stats.keepalives += 1
                self.counters.stats.bytesOut += buffer.readableBytes
            }
        }
        self.closeEvicted()
    }

    /// For an idle filtered client, in place of the keepalive comment: an id-only block naming the newest
    /// event it is past (skipped ones included), once per such event. The browser fires nothing for it but
    /// resumes from there, so a reconnect after a long run of other types neither replays that run nor,
    /// when the run outgrew the replay ring, reports a gap among types it never asked for. Nil for an
    /// unfiltered client (its last event carries the newest id) or when there is nothing new to mark.
    private func positionMark(for subscriber: Subscriber) -> ByteBuffer? {
        guard subscriber.filter != nil, let newest = self.newestID,
            subscriber.lastSequence >= newest.sequence, subscriber.markedSequence < newest.sequence
        else { return nil }
        subscriber.markedSequence = newest.sequence
        if subscriber.tracksEventIDs { subscriber.lastEventID = newest.id }
        var block = ByteBuffer()
        SSESerializer.write(ServerSentEvent(id: newest.id, data: nil), into: &block)
        return subscriber.framing.frame(block, allocator: ByteBufferAllocator())
    }

    /// A reload changed the feed's settings: keepalive and the timer pace apply at once; clients already
    /// connected keep the queue bounds they joined with. A changed `auth:` that demands something ends every
    /// stream with `retry:`: each was admitted by the old gate (perhaps anonymously, or with a key the reload
    /// revoked), so each comes back through the new one and resumes from its `Last-Event-ID`.
    func update(settings: FeedSettings) {
        let gateChanged = !settings.auth.admitsTheSame(as: self.settings.auth) && settings.auth.mode != .none
        self.settings = settings
        self.tickInterval = LoopHub.tickInterval(keepalive: settings.keepalive, maxLag: settings.client.maxLag)
        self.nextTick = .now()
        if gateChanged {
            self.endAll(retry: settings.retry, reason: .authChanged)
        }
    }

    /// The feed was removed (or its gate changed): each client gets `retry:` (so it comes back after that
    /// long, to whatever the path is then) and its stream ends cleanly.
    func endAll(retry: TimeAmount, reason: CloseReason) {
        var bytes = ByteBuffer()
        SSESerializer.writeRetry(milliseconds: retry.nanoseconds / 1_000_000, into: &bytes)
        bytes.writeStaticString("\n")
        self.closeAll { subscriber in
            subscriber.transport.writePayload(bytes)
            subscriber.sink?.close(reason)
        }
    }

    /// Called by the feed when it goes away (template instance closed, feed removed): ends every stream.
    func closeAll(_ body: (Subscriber) -> Void) {
        let all = self.subscribers
        for subscriber in all {
            self.remove(subscriber)
            body(subscriber)
        }
    }

    private func closeEvicted() {
        guard !self.evicted.isEmpty else { return }
        let evicted = self.evicted
        self.evicted.removeAll(keepingCapacity: true)
        for (subscriber, reason) in evicted {
            self.counters.countEviction(reason)
            self.remove(subscriber)
            subscriber.sink?.evict(reason)
        }
    }
}

/// A feed's handle on one of its shards, held on the feed's loop: the shard's loop, its inbox (safe from
/// any thread), and the shard itself, bound to its loop (reached only in tasks run there).
struct ShardLink: Sendable {
    let loop: EventLoop
    let inbox: ShardInbox
    let shard: NIOLoopBound<FeedShard>

    var id: ObjectIdentifier { ObjectIdentifier(self.inbox) }

    /// Called on the feed's loop for a shard on another loop: one lock and at most one task per batch
    /// per loop (never per client).
    func post(_ batch: [EncodedEvent]) {
        self.enqueue(.batch(batch))
    }

    /// Called on the feed's loop: runs `body` on the shard's loop after the batches posted before it and
    /// before those posted after it (a join answer, see `ShardInbox`).
    func postInOrder(_ body: @escaping @Sendable () -> Void) {
        self.enqueue(.call(body))
    }

    /// Runs `body` with the shard on its loop.
    func execute(_ body: @escaping @Sendable (FeedShard) -> Void) {
        let shard = self.shard
        self.loop.execute { body(shard.value) }
    }

    private func enqueue(_ item: ShardInbox.Item) {
        if self.inbox.append(item) {
            let shard = self.shard
            self.loop.execute { shard.value.drainInbox() }
        }
    }
}

/// Batches and join answers sent from a feed's loop to one of its shards, not handled yet. When the
/// shard's loop is busy, batches pile up here and go out together: one pass over the clients and one
/// flush each, however many arrived. Join answers travel in the same queue, so that a client added by an
/// answer gets exactly the batches that followed the answer's replay: a batch queued before it goes to
/// the clients already there, one queued after it to the new client too.
final class ShardInbox: Sendable {
    enum Item: Sendable {
        case batch([EncodedEvent])
        case call(@Sendable () -> Void)
    }

    private struct Queue {
        var items: [Item] = []
        var drainScheduled = false
    }

    private let queue = NIOLockedValueBox(Queue())

    /// Queues `item`; true when the caller must schedule a drain (none is scheduled yet).
    func append(_ item: Item) -> Bool {
        self.queue.withLockedValue { queue -> Bool in
            queue.items.append(item)
            guard !queue.drainScheduled else { return false }
            queue.drainScheduled = true
            return true
        }
    }

    /// Takes everything queued; the next `append` schedules a drain again.
    func takeAll() -> [Item] {
        self.queue.withLockedValue { queue -> [Item] in
            queue.drainScheduled = false
            defer { queue.items.removeAll(keepingCapacity: true) }
            return queue.items
        }
    }
}
