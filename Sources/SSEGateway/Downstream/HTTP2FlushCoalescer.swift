import NIOCore

/// Sits right below an HTTP/2 connection's `NIOHTTP2Handler` (above TLS, so one flush also makes one TLS
/// record run) and holds its flushes during a fan-out pass (`DeferredFlushes`). It never holds more than
/// `maxHeldBytes`: past that a flush goes through at once, so a large batch cannot pile up unflushed
/// bytes that would turn the connection unwritable and make its readers look like slow consumers.
final class HTTP2FlushCoalescer: ChannelOutboundHandler, DeferredFlushTarget {
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
    func flushHeld() {
        guard self.held, let context = self.context else { return }
        self.flushNow(context: context)
    }

    private func flushNow(context: ChannelHandlerContext) {
        self.held = false
        self.unflushedBytes = 0
        context.flush()
    }
}
