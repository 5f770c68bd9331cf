import NIOCore
import NIOHTTP2

/// The connection-level end of an HTTP/2 pipeline, after `NIOHTTP2Handler`:
///
/// - Idle timeout: a connection that has had no open stream for `timeout` from its start, or for
///   `idleTimeout` since its last stream ended, gets GOAWAY and is closed. This is HTTP/2's side of `limits.header_timeout`
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
    /// After the connection's last stream ended (`limits.idle_connection_timeout`).
    private let idleTimeout: TimeAmount
    /// Called when a connection that had streams is closed for idleness (for `/metrics`).
    private let onIdleClose: @Sendable () -> Void
    /// Called once when the HTTP/2 handler ends the connection for a protocol error or a tripped defence.
    private let onConnectionError: @Sendable (HTTP2ConnectionError) -> Void
    private var connectionErrorSeen = false
    /// A connection error was seen: close at the end of the read pass.
    private var closeAfterRead = false
    private var context: ChannelHandlerContext?
    /// The open streams and the idle timer's state (`HTTP2ConnectionGuard+StateMachine.swift`).
    private var machine = StateMachine()
    private var timer: Scheduled<Void>?

    /// `timeout` bounds a connection that has not opened a stream yet, `idleTimeout` (default: `timeout`)
    /// one whose streams have all ended.
    init(
        timeout: TimeAmount,
        idleTimeout: TimeAmount? = nil,
        onIdleClose: @escaping @Sendable () -> Void = {},
        onConnectionError: @escaping @Sendable (HTTP2ConnectionError) -> Void = { _ in }
    ) {
        self.timeout = timeout
        self.idleTimeout = idleTimeout ?? timeout
        self.onIdleClose = onIdleClose
        self.onConnectionError = onConnectionError
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
        if !self.connectionErrorSeen {
            self.connectionErrorSeen = true
            self.onConnectionError(HTTP2ConnectionError(error))
        }
        // The GOAWAY is already written; flush it and end the connection once this read pass is over:
        // SwiftNIO's multiplexer clears its list of streams that read in the pass only in
        // `channelReadComplete`, and a connection closed before that kept the list, its streams, the
        // multiplexer and this guard alive (`HTTP2FrameFloodTests` found one of its floods' connections left). An
        // error outside a read (a write) is closed by the task, which runs after the current pass.
        context.flush()
        guard !self.closeAfterRead else { return }
        self.closeAfterRead = true
        let channel = context.channel
        context.eventLoop.execute { channel.close(promise: nil) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
        if self.closeAfterRead { context.close(promise: nil) }
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
            if lastStreamID != .rootStream { self.onIdleClose() }
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
        let timeout = self.machine.lastStreamID == .rootStream ? self.timeout : self.idleTimeout
        self.timer = context.eventLoop.scheduleTask(in: timeout) {
            handler.value.run(handler.value.machine.timerFired())
        }
    }

    private func cancel() {
        self.timer?.cancel()
        self.timer = nil
    }
}
