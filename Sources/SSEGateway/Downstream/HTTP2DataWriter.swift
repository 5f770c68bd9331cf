import NIOCore
import NIOHTTP2

/// Sits right above an HTTP/2 connection's `NIOHTTP2Handler` and lets the connection's event streams write
/// their frames straight into it, past their stream channels.
///
/// Through a stream channel each DATA frame crosses the stream's pipeline, its pending-write queue and
/// the multiplexer, and each stream's flush makes the HTTP/2 handler walk its flow-control buffer once:
/// 100 streams on a connection meant 100 such walks per event. Here a stream's frame goes to the HTTP/2
/// handler in one call, and its flush is held during a fan-out pass (`DeferredFlushes`) so that the
/// handler flushes once per connection per pass. The HTTP/2 handler still does all of HTTP/2's own work
/// (stream states, flow-control windows, frame encoding); what the stream channel did for the stream's
/// writability, `HTTP2StreamHandler` does itself (`HTTP2StreamHandler.writeDirect`). One per connection,
/// on its event loop.
final class HTTP2DataWriter: ChannelOutboundHandler, DeferredFlushTarget {
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let deferred: DeferredFlushes
    private var context: ChannelHandlerContext?
    /// Past `HeldFlush.maxHeldBytes` of DATA a flush goes through during a pass, so that a large batch
    /// reaches the socket in pieces instead of piling up in the HTTP/2 handler's buffers.
    private var flushes = HeldFlush()
    /// Streams that went over their high watermark since the last flush that reached the socket.
    private var overHighWatermark: [HTTP2StreamHandler] = []

    init(deferred: DeferredFlushes) {
        self.deferred = deferred
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        // The streams refer to this writer: let go of them, or a closed connection's objects keep each other.
        self.overHighWatermark.removeAll()
    }

    /// Hands `frame` to the HTTP/2 handler (DATA waits there for the next flush); dropped once the
    /// connection's pipeline is gone, with `promise` failed.
    func write(_ frame: HTTP2Frame, promise: EventLoopPromise<Void>?) {
        guard let context = self.context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        if case .data(let data) = frame.payload { self.flushes.wrote(data.data.readableBytes) }
        context.write(self.wrapOutboundOut(frame), promise: promise)
    }

    /// Flushes the connection, or once at the end of the fan-out pass under way.
    func flush() {
        guard !self.flushes.hold(self, in: self.deferred) else { return }
        self.flushNow()
    }

    func flushHeld() {
        guard self.flushes.isHeld else { return }
        self.flushNow()
    }

    /// `stream` went over its high watermark: `checkHeld` once a flush has reached the socket. During a
    /// pass a flush may stop below the HTTP/2 handler, at the connection's coalescer (which holds up to
    /// 32 KiB until the pass ends), so a stream's write promises are not due before the pass's flushes are
    /// done: then after those; outside a pass, after the next flush.
    func checkAfterFlush(_ stream: HTTP2StreamHandler) {
        if self.overHighWatermark.isEmpty && self.deferred.isHolding { self.deferred.afterPass(self) }
        self.overHighWatermark.append(stream)
    }

    func passFlushed() {
        self.checkStreams()
    }

    private func flushNow() {
        self.flushes.wentThrough()
        self.context?.flush()
        if !self.deferred.isHolding { self.checkStreams() }
    }

    private func checkStreams() {
        guard !self.overHighWatermark.isEmpty else { return }
        let streams = self.overHighWatermark
        self.overHighWatermark.removeAll(keepingCapacity: true)
        for stream in streams {
            stream.checkHeld()
        }
    }
}
