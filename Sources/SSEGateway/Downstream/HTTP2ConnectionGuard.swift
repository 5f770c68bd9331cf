import NIOCore
import NIOHTTP2

/// The connection-level end of an HTTP/2 pipeline, after `NIOHTTP2Handler`:
///
/// - Idle timeout: a connection that has had no open stream for `timeout` (from its start, or since its
///   last stream ended) gets GOAWAY and is closed. This is HTTP/2's side of `limits.header_timeout`
///   (HTTP/1 closes a connection that sends no request head in time, also between keep-alive requests);
///   without it a client could finish the TLS handshake or send the h2c preface and then hold the
///   connection forever without a request.
/// - Connection errors: on a protocol violation (or a tripped DoS defence: reset flood, too many
///   CONTINUATION or control frames) `NIOHTTP2Handler` sends GOAWAY and fires the error, and leaves
///   closing the connection to the pipeline. Errors of a single stream reach that stream's channel, or
///   arrive here wrapped in `NIOHTTP2Errors.StreamError` and leave the connection alone.
///
/// It is the connection's `NIOHTTP2StreamDelegate`: the HTTP/2 handler does not pass stream creation and
/// closure down the pipeline.
final class HTTP2ConnectionGuard: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    /// Stream notifications from the HTTP/2 handler, on the connection's loop.
    struct StreamDelegate: NIOHTTP2StreamDelegate {
        let handler: NIOLoopBound<HTTP2ConnectionGuard>

        func streamCreated(_ id: HTTP2StreamID, channel: Channel) {
            self.handler.value.streamCreated(id)
        }

        func streamClosed(_ id: HTTP2StreamID, channel: Channel) {
            self.handler.value.streamClosed(id)
        }
    }

    private let timeout: TimeAmount
    private var context: ChannelHandlerContext?
    /// The open streams and the idle timer's state (`HTTP2ConnectionGuard+StateMachine.swift`).
    private var machine = StateMachine()
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
        LiveObjects.http2Connections.increment()
    }

    deinit {
        LiveObjects.http2Connections.decrement()
    }

    func streamDelegate(on loop: EventLoop) -> StreamDelegate {
        StreamDelegate(handler: NIOLoopBound(self, eventLoop: loop))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Added once the protocol is known (after ALPN or the h2c preface): the connection is active.
        self.run(self.machine.handlerAdded(channelActive: context.channel.isActive))
    }

    func channelActive(context: ChannelHandlerContext) {
        self.run(self.machine.channelActive())
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.run(self.machine.stopped())
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.run(self.machine.stopped())
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is NIOHTTP2Errors.StreamError { return }
        // The GOAWAY is already written; flush it and end the connection.
        context.flush()
        context.close(promise: nil)
    }

    private func streamCreated(_ id: HTTP2StreamID) {
        self.run(self.machine.streamCreated(id))
    }

    private func streamClosed(_ id: HTTP2StreamID) {
        self.run(self.machine.streamClosed(id))
    }

    private func run(_ action: StateMachine.Action) {
        switch action {
        case .none:
            break
        case .armTimer:
            self.arm()
        case .cancelTimer:
            self.cancel()
        case .sendGoAwayAndClose(let lastStreamID):
            self.timer = nil
            guard let channel = self.context?.channel else { return }
            // GOAWAY (NO_ERROR) first, so that the client knows which streams were seen, then close.
            let goAway = HTTP2Frame(
                streamID: .rootStream,
                payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil)
            )
            channel.writeAndFlush(goAway).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func arm() {
        self.cancel()
        // The HTTP/2 handler closes the streams after the connection went inactive: a timer armed then
        // would hold the closed channel until it fires.
        guard let context = self.context, context.channel.isActive else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.timer = context.eventLoop.scheduleTask(in: self.timeout) {
            handler.value.run(handler.value.machine.timerFired())
        }
    }

    private func cancel() {
        self.timer?.cancel()
        self.timer = nil
    }
}
