import NIOCore

/// First handler of a cleartext connection: tells HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3) from
/// HTTP/1 by the client preface, configures the pipeline for it, then hands the bytes it held on and
/// removes itself. A connection that sends nothing within `timeout` is closed.
final class ProtocolDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let timeout: TimeAmount
    private let configureHTTP1: (Channel) throws -> Void
    private let configureHTTP2: (Channel) throws -> Void
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var decided = false

    init(timeout: TimeAmount, http1: @escaping (Channel) throws -> Void, http2: @escaping (Channel) throws -> Void) {
        self.timeout = timeout
        self.configureHTTP1 = http1
        self.configureHTTP2 = http2
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        self.timer = context.eventLoop.scheduleTask(in: self.timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.decided else { return context.fireChannelRead(data) }
        var incoming = self.unwrapInboundIn(data)
        if self.buffered == nil {
            self.buffered = incoming
        } else {
            self.buffered!.writeBuffer(&incoming)
        }
        let bytes = self.buffered!.readableBytesView
        let compared = min(bytes.count, Self.preface.count)
        if !bytes.prefix(compared).elementsEqual(Self.preface.prefix(compared)) {
            self.decide(http2: false, context: context)
        } else if bytes.count >= Self.preface.count {
            self.decide(http2: true, context: context)
        }
    }

    private func decide(http2: Bool, context: ChannelHandlerContext) {
        self.decided = true
        self.timer?.cancel()
        do {
            try (http2 ? self.configureHTTP2 : self.configureHTTP1)(context.channel)
        } catch {
            context.close(promise: nil)
            return
        }
        if let buffered = self.buffered {
            self.buffered = nil
            context.fireChannelRead(self.wrapInboundOut(buffered))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
