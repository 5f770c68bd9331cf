import NIOCore

/// The flushes of HTTP/2 connections held back while an event loop writes one batch to its clients.
///
/// A batch reaches every stream of a connection in the same pass, and each stream flushes: without this,
/// each stream's flush would be a `write(2)` of its own, so 100 streams on one connection cost 100
/// syscalls per event. Inside `run`, a connection's flush is recorded instead, and done once when the
/// pass ends: one write per connection per batch. One per event loop (in its `LoopHub`); touched only there.
final class DeferredFlushes {
    private var isOpen = false
    private var pending: [HTTP2FlushCoalescer] = []

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
    fileprivate func hold(_ connection: HTTP2FlushCoalescer, alreadyHeld: Bool) -> Bool {
        guard self.isOpen else { return false }
        if !alreadyHeld { self.pending.append(connection) }
        return true
    }
}

/// Sits right below an HTTP/2 connection's `NIOHTTP2Handler` (above TLS, so one flush also makes one TLS
/// record run) and holds its flushes during a fan-out pass (`DeferredFlushes`). It never holds more than
/// `maxHeldBytes`: past that a flush goes through at once, so a large batch cannot pile up unflushed
/// bytes that would turn the connection unwritable and make its readers look like slow consumers.
final class HTTP2FlushCoalescer: ChannelOutboundHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// Half the connection's high write watermark (64 KiB), like the HTTP/1 subscriber's flush pieces.
    static let maxHeldBytes = 32 * 1024

    private let deferred: DeferredFlushes
    private var context: ChannelHandlerContext?
    /// Bytes written since the last flush that went through.
    private var unflushedBytes = 0
    private var held = false

    init(deferred: DeferredFlushes) {
        self.deferred = deferred
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        self.unflushedBytes += self.unwrapOutboundIn(data).readableBytes
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        if self.unflushedBytes < Self.maxHeldBytes, self.deferred.hold(self, alreadyHeld: self.held) {
            self.held = true
            return
        }
        self.flushNow(context: context)
    }

    /// The pass ended (or this connection's held bytes grew too large): the held flush goes out.
    fileprivate func flushHeld() {
        guard self.held, let context = self.context else { return }
        self.flushNow(context: context)
    }

    private func flushNow(context: ChannelHandlerContext) {
        self.held = false
        self.unflushedBytes = 0
        context.flush()
    }
}
