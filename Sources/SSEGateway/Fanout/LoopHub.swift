import NIOCore

/// Everything the fan-out keeps on one event loop: the shards of the feeds that have clients here, the
/// delivery counters, and the single coarse timer that sends keepalives and checks lag for every client
/// of the loop (no per-client timers). Touched only on `loop`.
///
/// `@unchecked Sendable`: `loop` and the keepalive buffers are immutable; `shards`, `counters`, `tickTask`,
/// `deferredFlushes` and `deflater` are read and written only on `loop` (every entry point runs there, or hops there
/// with `loop.execute`/`submit`). Other loops hold a hub only to hop onto its loop.
public final class LoopHub: @unchecked Sendable {
    public let loop: EventLoop
    private var shards: [ObjectIdentifier: FeedShard] = [:]
    private var counters: [String: DeliveryCounters] = [:]
    private var tickTask: RepeatedTask?
    /// HTTP/2 connection flushes held during a fan-out pass on this loop.
    let deferredFlushes = DeferredFlushes()
    /// The loop's one deflate state, for every gzip fragment made here (shared batches, a client's own
    /// bytes, replays): made when the first gzip client needs it.
    private(set) lazy var deflater = FragmentDeflater()
    private let keepaliveChunked: ByteBuffer
    private let keepaliveRaw: ByteBuffer
    /// The keepalive comment as a constant gzip fragment (stored), one per framing.
    private let keepaliveGzipChunked: ByteBuffer
    private let keepaliveGzipRaw: ByteBuffer

    init(loop: EventLoop) {
        self.loop = loop
        let raw = ByteBuffer(string: ": keepalive\n\n")
        let allocator = ByteBufferAllocator()
        self.keepaliveRaw = raw
        self.keepaliveChunked = StreamFraming.chunked.frame(raw, allocator: allocator)
        self.keepaliveGzipChunked = StreamFraming.gzipChunked.frame(raw, allocator: allocator)
        self.keepaliveGzipRaw = StreamFraming.gzipRaw.frame(raw, allocator: allocator)
    }

    /// Starts the loop's timer; `interval` is a fraction of the smallest keepalive/lag setting.
    func start(tickInterval: TimeAmount) {
        self.loop.execute {
            self.tickTask?.cancel()
            self.tickTask = self.loop.scheduleRepeatedTask(initialDelay: tickInterval, delay: tickInterval) { _ in
                self.tick()
            }
        }
    }

    /// Cancels the timer (call on `loop`).
    func stopTimer() {
        self.tickTask?.cancel()
        self.tickTask = nil
    }

    /// Closes every client stream on this loop (call on `loop`).
    func closeAllClients() {
        for shard in Array(self.shards.values) {
            shard.closeAll { $0.sink?.close(.shutdown) }
        }
    }

    /// The shards with clients, for a drain (call on `loop`).
    var shardsForDrain: [FeedShard] { Array(self.shards.values) }

    /// Connected clients per concrete feed path on this loop (call on `loop`).
    func clientsPerFeed() -> [String: Int] {
        var result: [String: Int] = [:]
        for shard in self.shards.values { result[shard.feed.path, default: 0] += shard.subscribers.count }
        return result
    }

    func counters(for definition: String) -> DeliveryCounters {
        if let existing = self.counters[definition] { return existing }
        let created = DeliveryCounters()
        self.counters[definition] = created
        return created
    }

    /// The shard of `feed` on this loop, created (and attached to the feed on its first subscribe) if needed.
    func shard(for feed: Feed) -> FeedShard {
        self.loop.preconditionInEventLoop()
        let key = ObjectIdentifier(feed)
        if let shard = self.shards[key] { return shard }
        let shard = FeedShard(feed: feed, hub: self, counters: self.counters(for: feed.sharedDefinition.name))
        self.shards[key] = shard
        return shard
    }

    /// The last client of a shard left: forget it here and tell the feed (on its loop).
    func shardBecameEmpty(_ shard: FeedShard) {
        let key = ObjectIdentifier(shard.feed)
        if self.shards[key] === shard {
            self.shards.removeValue(forKey: key)
        }
        let feed = shard.feed
        let link = shard.linkID
        feed.loop.execute { feed.detach(link) }
    }

    private func tick() {
        let now = NIODeadline.now()
        for shard in self.shards.values {
            shard.tick(now: now) { framing in
                switch framing {
                case .chunked: return self.keepaliveChunked
                case .raw: return self.keepaliveRaw
                case .gzipChunked: return self.keepaliveGzipChunked
                case .gzipRaw: return self.keepaliveGzipRaw
                }
            }
        }
    }

    /// Counters per feed definition on this loop, for `/metrics` (call on `loop`).
    func snapshot() -> [String: DeliveryStats] {
        self.counters.mapValues { $0.stats }
    }

    /// Bytes and entries queued for blocked clients on this loop (call on `loop`).
    func queuedBytes() -> Int {
        self.shards.values.reduce(0) { total, shard in
            shard.subscribers.reduce(total) { $0 + $1.queue.pendingBytes }
        }
    }
}

extension LoopHub {
    /// Joins a client to `feed` from this loop. `completion` runs on this loop with the shard to add the
    /// client to and the feed's answer (what to replay, or why not). The caller must then either `add` a
    /// subscriber to the shard or call `detachIfUnused()` on it.
    ///
    /// Ordering: the feed answers on its loop and the answer travels in the shard's inbox with the
    /// batches (`FeedShard.postInOrder`), so the client gets exactly the batches after its replay:
    /// nothing between the replay and the live stream is lost; the sequence filter drops overlap.
    func subscribe(feed: Feed, resumeID: String?, completion: @escaping (FeedShard, JoinAnswer) -> Void) {
        self.loop.preconditionInEventLoop()
        let shard = self.shard(for: feed)
        shard.pendingJoins += 1
        let link = shard.link
        let settings = shard.settings
        if feed.loop === self.loop {
            feed.join(link, shardSettings: settings, resumeID: resumeID) { answer in
                shard.pendingJoins -= 1
                completion(shard, answer)
            }
        } else {
            // Runs back on this loop, in the shard's inbox (after the batches queued before the answer).
            let joined = NIOLoopBound(
                { (answer: JoinAnswer) in
                    shard.pendingJoins -= 1
                    completion(shard, answer)
                },
                eventLoop: self.loop
            )
            feed.loop.execute {
                feed.join(link, shardSettings: settings, resumeID: resumeID) { answer in
                    link.postInOrder { joined.value(answer) }
                }
            }
        }
    }
}
