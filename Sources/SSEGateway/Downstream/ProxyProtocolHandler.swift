import NIOCore
import ProxyProtocol

/// First handler of a connection on a `proxy_protocol: true` listener (before TLS and protocol
/// detection): reads the load balancer's PROXY header (v1 or v2, `ProxyHeaderParser`), makes its source
/// the connection's address (`ConnectionPeer`), hands whatever followed the header on and removes
/// itself. A connection whose first bytes are not a valid header, or that has not sent a whole one
/// within `timeout`, is closed: on such a listener every connection must come through the balancer.
final class ProxyProtocolHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    private let maxLength: Int
    private let peer: ConnectionPeer
    private let rejected: (ProxyProtocolRejections.Reason, String) -> Void
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var done = false

    /// `maxLength` bounds a v2 header with its TLVs; `rejected` counts (and logs) a connection closed for
    /// an invalid header or a timeout.
    init(
        timeout: TimeAmount,
        maxLength: Int,
        peer: ConnectionPeer,
        rejected: @escaping (ProxyProtocolRejections.Reason, String) -> Void
    ) {
        self.timeout = timeout
        self.maxLength = maxLength
        self.peer = peer
        self.rejected = rejected
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.timer = context.eventLoop.scheduleTask(in: self.timeout) {
            let handler = loopBound.value
            guard !handler.done else { return }
            handler.done = true
            handler.rejected(.timeout, "no whole header within the header timeout")
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.done else { return }
        var incoming = self.unwrapInboundIn(data)
        if self.buffered == nil {
            self.buffered = incoming
        } else {
            self.buffered!.writeBuffer(&incoming)
        }
        switch ProxyHeaderParser.parse(self.buffered!, maxLength: self.maxLength) {
        case .needMoreBytes:
            return
        case .invalid(let reason):
            self.done = true
            self.timer?.cancel()
            self.buffered = nil
            self.rejected(.invalid, reason)
            context.close(promise: nil)
        case .parsed(let header):
            self.done = true
            self.timer?.cancel()
            if let source = header.source {
                self.peer.address = source.ipAddress
            }
            var rest = self.buffered!
            self.buffered = nil
            rest.moveReaderIndex(forwardBy: header.length)
            if rest.readableBytes > 0 {
                context.fireChannelRead(self.wrapInboundOut(rest))
                context.fireChannelReadComplete()
            }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}
