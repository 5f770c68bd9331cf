import NIOCore

/// A connection whose flushes a fan-out pass may hold back until the pass ends.
protocol DeferredFlushTarget: AnyObject {
    /// Flushes what the pass held back.
    func flushHeld()
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
    private var pending: [any DeferredFlushTarget] = []

    /// Runs a fan-out pass; flushes the connections whose flushes it held back when it ends. Nested
    /// calls join the outer pass.
    func run(_ pass: () -> Void) {
        guard !self.isOpen else { return pass() }
        self.isOpen = true
        pass()
        self.isOpen = false
        guard !self.pending.isEmpty else { return }
        let pending = self.pending
        self.pending.removeAll(keepingCapacity: true)
        for connection in pending {
            connection.flushHeld()
        }
    }

    /// Called by a connection's coalescer on a flush: true when the flush is held until the pass ends.
    func hold(_ connection: any DeferredFlushTarget, alreadyHeld: Bool) -> Bool {
        guard self.isOpen else { return false }
        if !alreadyHeld { self.pending.append(connection) }
        return true
    }
}
