import NIOCore

/// Sits before the HTTP/1 request decoder and cuts off a client whose request head grows beyond
/// `limit` bytes (`431`, then close). The stream handler turns counting off once a head is complete
/// and on again when it waits for the next request.
final class HeadSizeLimiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limit: Int
    private var counted = 0
    private var counting = true
    private var tripped = false

    init(limit: Int) {
        self.limit = limit
    }

    func headReceived() {
        self.counting = false
        self.counted = 0
    }

    func expectHead() {
        self.counting = true
        self.counted = 0
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.tripped else { return }
        if self.counting {
            self.counted += self.unwrapInboundIn(data).readableBytes
            if self.counted > self.limit {
                self.tripped = true
                var buffer = context.channel.allocator.buffer(capacity: 128)
                ResponseHead(status: .init(statusCode: 431, reasonPhrase: "Request Header Fields Too Large"), headers: [
                    ("Content-Length", "0"), ("Connection", "close"),
                ]).encodeHTTP1(into: &buffer)
                context.writeAndFlush(self.wrapOutboundOut(buffer)).whenComplete { _ in context.close(promise: nil) }
                return
            }
        }
        context.fireChannelRead(data)
    }
}
