import NIOCore

/// One connected client of one feed, on its channel's event loop. Owned by its `FeedShard`.
///
/// It writes to its transport directly (one dynamic call per delivery) and caches the transport's
/// framing, so the per-event, per-client work is a queue decision and a channel write.
public final class Subscriber {
    private(set) weak var sink: SubscriberSink?
    let transport: SubscriberOutput
    let framing: StreamFraming
    var queue: SubscriberQueue
    /// Sequence of the last event handed to this client (replay included); later batches skip what it has.
    var lastSequence: Int64
    /// The id the client resumed from (nil: it asked for none), for a gap found after it joined.
    let resumeID: String?
    /// The event types this client asked for (`?event=`); nil: every event. A skipped event still moves
    /// `lastSequence`, so the client is past it as if it had been sent.
    let filter: EventFilter?
    /// For a filtered client: the sequence of the newest event whose id its browser has, from an event it
    /// was sent or a position mark (`FeedShard.positionMark`).
    var markedSequence: Int64 = 0
    /// Whether `lastEventID` is kept up to date: only for streams whose credential can run out (the id is
    /// then the `auth-expired` notice's resume point); other clients pay nothing for it.
    var tracksEventIDs = false
    /// The id of the last event with one handed to this client (or the id it resumed from).
    var lastEventID: String?
    /// A poll response (SPEC §6a): it collects until its owner answers, so it gets no keepalives, and a
    /// drain ends it at once (its owner answers with what it has) instead of at a random moment.
    var pollsOnce = false
    /// Events handed to this client (replay included), for the access log: one add per delivery, beside
    /// the shard's own counters.
    var eventsSent = 0
    /// The feed's path in gap notices, for a client of several feeds on one connection (`/multi`); nil for
    /// a one-feed stream (its notices need not say which feed).
    var feedLabel: String?
    /// The last time bytes were handed to the channel, for keepalives.
    var lastWriteAt: NIODeadline
    /// Position in the shard's array, for O(1) removal; -1 once removed.
    var shardIndex = -1
    private var needsFlush = false
    private var unflushedBytes = 0
    /// Half the channels' high write watermark (64 KiB).
    static let flushThreshold = 32 * 1024

    init(
        sink: SubscriberSink,
        transport: SubscriberOutput,
        limits: ClientLimitsConfig,
        lastSequence: Int64,
        resumeID: String? = nil,
        filter: EventFilter? = nil,
        now: NIODeadline
    ) {
        self.sink = sink
        self.resumeID = resumeID
        self.filter = filter
        self.transport = transport
        self.framing = transport.framing
        self.queue = SubscriberQueue(maxQueue: limits.maxQueue, maxLag: limits.maxLag)
        self.lastSequence = lastSequence
        self.lastWriteAt = now
    }

    var isEvicted: Bool {
        if case .evicted = self.queue.state { return true }
        return false
    }

    /// Offers bytes; returns the eviction reason the first time the client goes over a bound.
    @inline(__always)
    func offer(_ bytes: ByteBuffer, producedAt: NIODeadline, now: NIODeadline, replay: Bool = false) -> EvictionReason?
    {
        switch self.queue.offer(bytes, producedAt: producedAt, now: now, replay: replay) {
        case .write:
            self.lastWriteAt = now
            self.needsFlush = true
            // May re-enter `writabilityChanged` when it crosses the high watermark; the queue is not
            // being mutated at this point, so that is safe.
            self.transport.writeShared(bytes)
            self.unflushedBytes += bytes.readableBytes
            if self.unflushedBytes >= Self.flushThreshold {
                // A channel counts unflushed bytes as pending too: hand a large batch to the socket in
                // pieces, so that it never turns unwritable (and queues against `max_queue`) merely for
                // bytes nobody tried to send yet. Only a client that really does not read stays blocked.
                self.flushIfNeeded()
            }
            return nil
        case .queued, .drop:
            return nil
        case .evict(let reason):
            return reason
        }
    }

    /// A notice of the gateway's own (not an event of the feed: `auth-expiring`), behind whatever the client
    /// still has queued. Over its queue bound the client is evicted on the shard's next pass, as for any event.
    func offerNotice(_ notice: ByteBuffer) {
        let now = NIODeadline.now()
        let bytes = self.framing.frame(notice, allocator: ByteBufferAllocator())
        guard self.offer(bytes, producedAt: now, now: now) == nil else { return }
        self.flushIfNeeded()
    }

    func flushIfNeeded() {
        if self.needsFlush {
            self.needsFlush = false
            self.unflushedBytes = 0
            self.transport.flush()
        }
    }

    /// The channel became writable or not; drains the queue as far as the channel takes it.
    func writabilityChanged(isWritable: Bool, now: NIODeadline) {
        self.queue.writabilityChanged(isWritable: isWritable, now: now)
        guard isWritable else { return }
        var wrote = false
        while self.transport.isWritable, let next = self.queue.nextToDrain() {
            self.transport.writeShared(next)
            wrote = true
            self.needsFlush = true
            self.unflushedBytes += next.readableBytes
            if self.unflushedBytes >= Self.flushThreshold {
                // As in `offer`: hand the drain to the channel in pieces, so that writability reflects what
                // the client has not read (a compressor holds what is unflushed, and the channel sees nothing).
                self.flushIfNeeded()
            }
        }
        if wrote {
            self.lastWriteAt = now
            self.flushIfNeeded()
        }
    }
}
