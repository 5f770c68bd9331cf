import NIOCore

/// The whole pipeline of a cleartext connection over `limits.new_connections_per_second`: it waits for
/// the first bytes of the request, answers a canned `503` with a jittered `Retry-After` (1-2 s, the
/// bucket refills within a second) and closes. Nothing is parsed or routed.
///
/// It answers after the first read, not at once: closing a socket with unread bytes makes Linux send a
/// reset, which can destroy the response before the client read it. An h2c client (its preface starts
/// with `PRI `) cannot read an HTTP/1.1 answer and is just closed; a client that sends nothing is closed
/// after `timeout`.
final class ConnectionRefusalResponder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var answered = false
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount = .seconds(1)) {
        self.timeout = timeout
    }

    static func response(retryAfter: String = RequestRouter.jitteredRetryAfter(.seconds(1))) -> String {
        let body = "too many new connections\n"
        return "HTTP/1.1 503 Service Unavailable\r\nRetry-After: \(retryAfter)\r\nContent-Type: text/plain\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        self.timer = context.eventLoop.scheduleTask(in: self.timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.answered else { return }
        self.answered = true
        let bytes = self.unwrapInboundIn(data)
        guard bytes.readableBytesView.starts(with: "PRI ".utf8) == false else {
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: Self.response()))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
