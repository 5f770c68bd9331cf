import NIOCore
import NIOHPACK
import NIOHTTP2

/// One HTTP/2 SSE client of the load tool: a stream channel of a shared connection. Sends the request
/// HEADERS (END_STREAM), reads `:status` and `content-encoding`, and hands DATA payloads to the same
/// receiver the HTTP/1.1 client uses. A stream the server resets, or that goes with its connection
/// (GOAWAY, close), counts as a disconnect.
final class BenchHTTP2StreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let request: HPACKHeaders
    private var receiver: BenchStreamReceiver
    private var wasReset = false

    init(request: HPACKHeaders, loop: BenchLoopTally, mode: BenchClientMode = BenchClientMode()) {
        self.request = request
        self.receiver = BenchStreamReceiver(loop: loop, mode: mode)
    }

    func channelActive(context: ChannelHandlerContext) {
        let headers = HTTP2Frame.FramePayload.headers(.init(headers: self.request, endStream: true))
        context.writeAndFlush(self.wrapOutboundOut(headers), promise: nil)
        self.receiver.requestSent()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .headers(let frame):
            // Informational (1xx) heads are skipped; trailers come after the body and change nothing.
            guard !self.receiver.isStreaming, let status = frame.headers.first(name: ":status").flatMap(Int.init),
                status >= 200
            else {
                return
            }
            let gzip = frame.headers["content-encoding"].contains { $0.lowercased() == "gzip" }
            if !self.receiver.head(status: status, gzip: gzip) { context.close(promise: nil) }
        case .data(let frame):
            guard case .byteBuffer(let buffer) = frame.data else { return }
            do {
                try self.receiver.body(buffer)
            } catch {
                self.receiver.malformed()
                context.close(promise: nil)
            }
        case .rstStream:
            self.wasReset = true
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.receiver.closed(reset: self.wasReset)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is NIOHTTP2Errors.StreamClosed { self.wasReset = true }
        context.close(promise: nil)
    }
}
