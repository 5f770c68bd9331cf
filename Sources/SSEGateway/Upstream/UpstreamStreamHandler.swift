import Logging
import NIOCore
import NIOHTTP1
import SSE

/// The handler at the end of an upstream connection's pipeline: sends the request, checks the response,
/// and feeds body bytes to the client's parser, batching the events of one read burst.
final class UpstreamStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let client: UpstreamClient
    private let connection: UpstreamStateMachine.ConnectionID
    private var streaming = false
    private var finished = false
    private var batch: [ServerSentEvent] = []

    init(client: UpstreamClient, connection: UpstreamStateMachine.ConnectionID) {
        self.client = client
        self.connection = connection
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(self.wrapOutboundOut(.head(self.client.requestHead())), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.finished else { return }
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            if head.status == .noContent {
                return self.finish(context: context, .noContent)
            }
            guard (200..<300).contains(head.status.code) else {
                return self.finish(context: context, .status(Int(head.status.code)))
            }
            let contentType = head.headers.first(name: "Content-Type") ?? ""
            guard contentType.lowercased().hasPrefix("text/event-stream") else {
                return self.finish(context: context, .contentType(contentType))
            }
            self.streaming = true
            self.client.streamStarted(on: self.connection)
        case .body(var buffer):
            guard self.streaming else { return }
            do {
                try self.client.parser.parse(&buffer) { output in
                    switch output {
                    case .event(let event): self.batch.append(event)
                    case .retry(let milliseconds): self.client.receivedRetry(milliseconds, on: self.connection)
                    }
                }
            } catch {
                self.deliverBatch()
                return self.finish(context: context, .eventTooLarge)
            }
        case .end:
            self.deliverBatch()
            self.finish(context: context, .closed)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.deliverBatch()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            self.deliverBatch()
            self.finish(context: context, .idleTimeout)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.deliverBatch()
        self.finish(context: context, self.streaming ? .closed : .error("connection closed before a response"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.deliverBatch()
        self.finish(context: context, .error("\(error)"))
    }

    private func deliverBatch() {
        guard !self.batch.isEmpty else { return }
        let events = self.batch
        self.batch.removeAll(keepingCapacity: true)
        self.client.received(events, on: self.connection)
    }

    private func finish(context: ChannelHandlerContext, _ failure: UpstreamFailure) {
        guard !self.finished else { return }
        self.finished = true
        self.client.fail(failure, on: self.connection)
        context.close(promise: nil)
    }
}
