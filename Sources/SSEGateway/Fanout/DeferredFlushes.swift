import NIOCore

/// A connection whose flushes a fan-out pass may hold back until the pass ends.
protocol DeferredFlushTarget: AnyObject {
    /// Flushes what the pass held back.
    func flushHeld()
    /// Called after every held flush of the pass went through, when asked for (`DeferredFlushes.afterPass`).
    func passFlushed()
}

extension DeferredFlushTarget {
    func passFlushed() {}
}

/// The flushes of HTTP/2 connections held back while an event loop writes one batch to its clients.
///
/// A batch reaches every stream of a connection in the same pass, and each stream flushes: without this,
/// each stream's flush would be a `write(2)` of its own, so 100 streams on one connection cost 100
/// syscalls per event. Inside `run`, a connection's flush is recorded instead, and done once when the
/// pass ends: one write per connection per batch. One per event loop (in its `LoopHub`); touched only there.
/// The fan-out owns it; a downstream connection (`HTTP2FlushCoalescer`) takes part as a `DeferredFlushTarget`.
final class DeferredFlushes {
    private var isOpen = false
    /// A pass is under way: flushes are being held.
    var isHolding: Bool { self.isOpen }
    private var pending: [any DeferredFlushTarget] = []
    /// Connections to call `passFlushed` on once the pass's flushes are done.
    private var afterFlushes: [any DeferredFlushTarget] = []

    /// Runs a fan-out pass; flushes the connections whose flushes it held back when it ends. Nested
    /// calls join the outer pass.
    func run(_ pass: () -> Void) {
        guard !self.isOpen else { return pass() }
        self.isOpen = true
        pass()
        self.isOpen = false
        if !self.pending.isEmpty {
            let pending = self.pending
            self.pending.removeAll(keepingCapacity: true)
            for connection in pending {
                connection.flushHeld()
            }
        }
        guard !self.afterFlushes.isEmpty else { return }
        let after = self.afterFlushes
        self.afterFlushes.removeAll(keepingCapacity: true)
        for connection in after {
            connection.passFlushed()
        }
    }

    /// Asks for `connection.passFlushed()` once the pass under way has flushed every connection it held.
    func afterPass(_ connection: any DeferredFlushTarget) {
        self.afterFlushes.append(connection)
    }

    /// Called by a connection's coalescer on a flush: true when the flush is held until the pass ends.
    func hold(_ connection: any DeferredFlushTarget, alreadyHeld: Bool) -> Bool {
        guard self.isOpen else { return false }
        if !alreadyHeld { self.pending.append(connection) }
        return true
    }
}

/// The part of a connection's flush that a pass may hold back (`DeferredFlushes.hold`): the bytes written
/// since the last flush that went through, and whether one is held. It never holds more than
/// `maxHeldBytes`: past that a flush goes through at once, so a large batch cannot pile up unflushed bytes
/// that would turn the connection unwritable and make its readers look like slow consumers.
struct HeldFlush {
    /// Half the connection's high write watermark (64 KiB), like the HTTP/1 subscriber's flush pieces.
    static let maxHeldBytes = 32 * 1024

    private var unflushedBytes = 0
    /// A flush is held until the pass ends.
    private(set) var isHeld = false

    mutating func wrote(_ bytes: Int) {
        self.unflushedBytes += bytes
    }

    /// A flush of `target`: true when the pass under way holds it; false: it goes through now.
    mutating func hold(_ target: any DeferredFlushTarget, in deferred: DeferredFlushes) -> Bool {
        guard self.unflushedBytes < Self.maxHeldBytes, deferred.hold(target, alreadyHeld: self.isHeld) else {
            return false
        }
        self.isHeld = true
        return true
    }

    /// The flush went through.
    mutating func wentThrough() {
        self.isHeld = false
        self.unflushedBytes = 0
    }
}
