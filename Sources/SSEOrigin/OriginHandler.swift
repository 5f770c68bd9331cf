import NIOCore
import NIOHTTP1

/// One origin connection: answers its request as the origin's behaviour says, and leaves the origin's
/// stream list when it closes. Runs on the connection's loop.
final class OriginHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let origin: OriginServer

    init(origin: OriginServer) {
        self.origin = origin
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = self.unwrapInboundIn(data) else { return }
        guard let delay = self.origin.responseDelay else { return self.answer(head, context: context) }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = bound.value
            if context.channel.isActive { handler.answer(head, context: context) }
        }
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let (behaviour, replay) = self.origin.accept(head, channel: context.channel)
        switch behaviour {
        case .stream, .silent:
            let headers = HTTPHeaders([("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            for bytes in replay { context.write(self.wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil) }
            context.flush()
        case .status(let code):
            let headers = HTTPHeaders([("Content-Length", "0"), ("Content-Type", "text/plain")])
            context.write(
                self.wrapOutboundOut(
                    .head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: code), headers: headers))
                ),
                promise: nil
            )
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        case .wrongContentType:
            let body = "<html></html>"
            let headers = HTTPHeaders([("Content-Length", String(body.utf8.count)), ("Content-Type", "text/html")])
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        case .streamThenEnd:
            let headers = HTTPHeaders([("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            for bytes in replay { context.write(self.wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil) }
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.origin.remove(context.channel)
        context.fireChannelInactive()
    }
}
