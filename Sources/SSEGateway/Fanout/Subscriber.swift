import NIOCore

/// Where a subscriber's bytes go: one HTTP/1 connection, or one HTTP/2 stream.
/// All calls happen on the subscriber's event loop.
public protocol SubscriberSink: AnyObject {
    var framing: StreamFraming { get }
    var isWritable: Bool { get }
    /// Queue bytes on the channel without flushing.
    func write(_ bytes: ByteBuffer)
    func flush()
    /// End the stream because the gateway evicted the client.
    func evict(_ reason: EvictionReason)
    /// End the stream because the gateway or the feed is going away.
    func close()
}

/// One connected client of one feed, on its channel's event loop. Owned by its `FeedShard`.
public final class Subscriber {
    let sink: SubscriberSink
    var queue: SubscriberQueue
    /// Sequence of the last event handed to this client (replay included); later batches skip what it has.
    var lastSequence: Int64
    /// The last time bytes were handed to the channel, for keepalives.
    var lastWriteAt: NIODeadline
    /// Position in the shard's array, for O(1) removal; -1 once removed.
    var shardIndex = -1
    private var needsFlush = false

    init(sink: SubscriberSink, limits: ClientLimitsConfig, lastSequence: Int64, now: NIODeadline) {
        self.sink = sink
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
    func offer(_ bytes: ByteBuffer, now: NIODeadline, replay: Bool = false) -> EvictionReason? {
        switch self.queue.offer(bytes, now: now, replay: replay) {
        case .write:
            self.lastWriteAt = now
            self.needsFlush = true
            // May re-enter `writabilityChanged` when it crosses the high watermark; the queue is not
            // being mutated at this point, so that is safe.
            self.sink.write(bytes)
            return nil
        case .queued, .drop:
            return nil
        case .evict(let reason):
            return reason
        }
    }

    func flushIfNeeded() {
        if self.needsFlush {
            self.needsFlush = false
            self.sink.flush()
        }
    }

    /// The channel became writable or not; drains the queue as far as the channel takes it.
    func writabilityChanged(isWritable: Bool, now: NIODeadline) {
        self.queue.writabilityChanged(isWritable: isWritable, now: now)
        guard isWritable else { return }
        var wrote = false
        while self.sink.isWritable, let next = self.queue.nextToDrain() {
            self.sink.write(next)
            wrote = true
        }
        if wrote {
            self.lastWriteAt = now
            self.needsFlush = true
            self.flushIfNeeded()
        }
    }
}
