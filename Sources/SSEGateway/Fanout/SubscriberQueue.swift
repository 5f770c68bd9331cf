import NIOCore

/// One client's backpressure: what to hand to the channel now, what to hold, and when to give up.
///
/// A value type with no I/O. The channel handler feeds it writability changes and events, and carries
/// out the returned actions. While the channel is writable, bytes go straight to it (NIO's own buffer
/// is bounded by the write watermarks); once it is not, they wait here, bounded by `maxQueue` bytes and
/// by `maxLag` age. Over either bound the client is evicted: it never slows other clients or the
/// upstream, and its memory is bounded.
public struct SubscriberQueue {
    public enum State: Equatable {
        case writable
        case blocked
        case evicted(EvictionReason)
    }

    /// What the handler does with one offered buffer.
    public enum OfferAction: Equatable {
        /// Write it to the channel now (flush at the end of the batch).
        case write
        /// Held in the queue until the channel is writable again.
        case queued
        /// Disconnect the client (first time only; later offers return `.drop`).
        case evict(EvictionReason)
        /// The client is already evicted: ignore.
        case drop
    }

    private struct Pending {
        var bytes: ByteBuffer
        var producedAt: NIODeadline
        /// Replay bytes are paced by writability but do not count against `maxQueue` or `maxLag`: they
        /// are slices of the replay ring, so holding them costs no copy, and a reconnecting client must
        /// not be evicted for asking for the replay it is entitled to.
        var exempt: Bool
    }

    public let maxQueue: Int
    public let maxLag: TimeAmount
    public private(set) var state: State = .writable
    private var pending = CircularBuffer<Pending>(initialCapacity: 0)
    /// Bytes queued that count against `maxQueue` (replay excluded).
    public private(set) var pendingBytes = 0
    /// Number of replay entries at the front of `pending`.
    private var exemptPrefix = 0
    /// When the channel last stopped taking bytes; nil while writable.
    public private(set) var blockedSince: NIODeadline?

    public init(maxQueue: Int, maxLag: TimeAmount) {
        self.maxQueue = maxQueue
        self.maxLag = maxLag
    }

    public var pendingCount: Int { self.pending.count }

    /// Offers bytes produced at `producedAt` (a live event's arrival from upstream, or now);
    /// `replay` marks bytes of the resume replay (see `Pending.exempt`).
    public mutating func offer(
        _ bytes: ByteBuffer,
        producedAt: NIODeadline,
        now: NIODeadline,
        replay: Bool = false
    ) -> OfferAction {
        switch self.state {
        case .evicted:
            return .drop
        case .writable:
            return .write
        case .blocked:
            if !replay {
                if self.pendingBytes + bytes.readableBytes > self.maxQueue {
                    return self.evict(.maxQueue)
                }
                if let reason = self.lagExceeded(now: now) {
                    return self.evict(reason)
                }
                self.pendingBytes += bytes.readableBytes
            }
            // Replay is offered before any live event, so exempt entries form a prefix (and if that ever
            // did not hold, the bytes would simply count).
            let exempt = replay && self.pending.count == self.exemptPrefix
            if exempt {
                self.exemptPrefix += 1
            } else if replay {
                self.pendingBytes += bytes.readableBytes
            }
            self.pending.append(Pending(bytes: bytes, producedAt: producedAt, exempt: exempt))
            return .queued
        }
    }

    /// The oldest unsent bytes are older than `maxLag`: either the oldest counted entry of the queue,
    /// or bytes that have sat in the channel's own buffer since it stopped being writable.
    private func lagExceeded(now: NIODeadline) -> EvictionReason? {
        if let since = self.blockedSince, now - since > self.maxLag { return .maxLag }
        if self.pending.count > self.exemptPrefix {
            let oldest = self.pending[self.pending.index(self.pending.startIndex, offsetBy: self.exemptPrefix)]
            if now - oldest.producedAt > self.maxLag { return .maxLag }
        }
        return nil
    }

    /// The channel's writability changed (from `channelWritabilityChanged`, or after a write turned it off).
    public mutating func writabilityChanged(isWritable: Bool, now: NIODeadline) {
        switch self.state {
        case .evicted:
            return
        case .writable, .blocked:
            if isWritable {
                self.blockedSince = nil
                // Stay blocked while anything is queued so that order is kept; `nextToDrain` empties it.
                self.state = self.pending.isEmpty ? .writable : .blocked
            } else {
                if self.blockedSince == nil { self.blockedSince = now }
                self.state = .blocked
            }
        }
    }

    /// Takes the next queued buffer to write while the channel is writable; when the queue runs dry the
    /// state returns to `.writable`. The handler loops `while channel.isWritable, let b = nextToDrain()`.
    public mutating func nextToDrain() -> ByteBuffer? {
        guard case .blocked = self.state else { return nil }
        guard let next = self.pending.popFirst() else {
            self.state = .writable
            return nil
        }
        if next.exempt {
            self.exemptPrefix -= 1
        } else {
            self.pendingBytes -= next.bytes.readableBytes
        }
        if self.pending.isEmpty {
            self.state = .writable
        }
        return next.bytes
    }

    /// Periodic check (from the loop's coarse timer): a blocked client whose oldest queued bytes are too old,
    /// or a client of any state whose transport has held written bytes back since `heldSince` for longer
    /// than `maxLag`. The latter is an HTTP/2 stream whose flow-control window is shut: its channel stays
    /// writable until 64 KiB pile up, which on a quiet feed can take minutes, yet nothing reaches the client.
    public mutating func checkLag(now: NIODeadline, heldSince: NIODeadline? = nil) -> EvictionReason? {
        switch self.state {
        case .evicted:
            return nil
        case .writable, .blocked:
            if let heldSince, now - heldSince > self.maxLag {
                _ = self.evict(.maxLag)
                return .maxLag
            }
            guard case .blocked = self.state, let reason = self.lagExceeded(now: now) else {
                return nil
            }
            _ = self.evict(reason)
            return reason
        }
    }

    private mutating func evict(_ reason: EvictionReason) -> OfferAction {
        self.state = .evicted(reason)
        self.pending.removeAll()
        self.pendingBytes = 0
        self.exemptPrefix = 0
        self.blockedSince = nil
        return .evict(reason)
    }
}
