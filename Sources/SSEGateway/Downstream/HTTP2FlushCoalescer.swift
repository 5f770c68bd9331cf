import NIOCore

/// Sits right below an HTTP/2 connection's `NIOHTTP2Handler` (above TLS, so one flush also makes one TLS
/// record run) and holds its flushes during a fan-out pass (`DeferredFlushes`), up to
/// `HeldFlush.maxHeldBytes`.
final class HTTP2FlushCoalescer: ChannelOutboundHandler, DeferredFlushTarget {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let deferred: DeferredFlushes
    private var context: ChannelHandlerContext?
    private var flushes = HeldFlush()

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
        self.flushes.wrote(self.unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        guard !self.flushes.hold(self, in: self.deferred) else { return }
        self.flushNow(context: context)
    }

    /// The pass ended (or this connection's held bytes grew too large): the held flush goes out.
    func flushHeld() {
        guard self.flushes.isHeld, let context = self.context else { return }
        self.flushNow(context: context)
    }

    private func flushNow(context: ChannelHandlerContext) {
        self.flushes.wentThrough()
        context.flush()
    }
}
