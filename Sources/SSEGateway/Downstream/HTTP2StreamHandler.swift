import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// Serves one HTTP/2 stream (one request). A feed request becomes a `StreamSession` for which this
/// handler is the transport: events go out as DATA frames of the shared, unframed event buffers; the
/// stream's writability follows HTTP/2 flow control, so a client that stops reading exhausts its window,
/// goes over `max_queue`/`max_lag`, and only its stream is reset.
final class HTTP2StreamHandler: ChannelInboundHandler, StreamTransport {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let gateway: GatewayContext
    private var context: ChannelHandlerContext?
    private var session: StreamSession?
    private var answered = false

    init(gateway: GatewayContext) {
        self.gateway = gateway
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .headers(let frame) = self.unwrapInboundIn(data), !self.answered else { return }
        self.answered = true
        guard let head = Self.requestHead(frame.headers) else {
            let (response, body) = ResponseHead.plain(.badRequest, "bad request\n")
            return self.respond(response, body: body)
        }
        switch RequestRouter(registry: self.gateway.registry).route(head) {
        case .respond(let response, let body, _):
            self.respond(response, body: head.method == .HEAD ? "" : body)
        case .stream(let request):
            if request.headOnly {
                var response = ResponseHead.eventStream()
                response.headers += request.corsHeaders
                context.writeAndFlush(self.wrapOutboundOut(.headers(.init(headers: Self.hpack(response), endStream: true))), promise: nil)
                return
            }
            guard let session = StreamSession.admit(request, gateway: self.gateway, transport: self, loop: context.eventLoop) else {
                let (response, body) = StreamSession.overCapacity(request)
                return self.respond(response, body: body)
            }
            self.session = session
            session.begin()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.session?.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.session?.transportClosed()
        self.session = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    /// An HTTP/1-style request head from the HEADERS frame's pseudo-headers, or nil when malformed.
    static func requestHead(_ headers: HPACKHeaders) -> HTTPRequestHead? {
        guard let method = headers.first(name: ":method"), let path = headers.first(name: ":path"), !path.isEmpty else {
            return nil
        }
        var regular = HTTPHeaders()
        for (name, value, _) in headers where !name.hasPrefix(":") {
            regular.add(name: name, value: value)
        }
        if let authority = headers.first(name: ":authority"), !regular.contains(name: "Host") {
            regular.add(name: "Host", value: authority)
        }
        return HTTPRequestHead(version: HTTPVersion(major: 2, minor: 0), method: HTTPMethod(rawValue: method), uri: path, headers: regular)
    }

    /// HPACK headers for a response; connection-specific headers are not allowed in HTTP/2 (RFC 9113 §8.2.2).
    static func hpack(_ head: ResponseHead) -> HPACKHeaders {
        var headers = HPACKHeaders([(":status", String(head.status.code))])
        for (name, value) in head.headers {
            switch name.lowercased() {
            case "connection", "transfer-encoding", "keep-alive", "upgrade", "proxy-connection": continue
            default: headers.add(name: name.lowercased(), value: value)
            }
        }
        return headers
    }

    // MARK: StreamTransport

    let framing = StreamFraming.raw
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    func writeHead(_ head: ResponseHead) {
        self.context?.write(self.wrapOutboundOut(.headers(.init(headers: Self.hpack(head)))), promise: nil)
    }

    func writeShared(_ bytes: ByteBuffer) {
        self.context?.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(bytes)))), promise: nil)
    }

    func writePayload(_ bytes: ByteBuffer) {
        self.writeShared(bytes)
    }

    func flush() {
        self.context?.flush()
    }

    func abort() {
        // Closing an open stream channel sends RST_STREAM (CANCEL); the connection and its other streams stay.
        self.context?.close(promise: nil)
    }

    func finish() {
        self.context?.writeAndFlush(self.wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))), promise: nil)
    }

    func respond(_ head: ResponseHead, body: String) {
        guard let context = self.context else { return }
        let hasBody = !body.isEmpty
        var head = head
        if head.status.code >= 200 && head.status.code != 204 && head.status.code != 304 {
            head.headers.append(("Content-Length", String(body.utf8.count)))
        }
        context.write(self.wrapOutboundOut(.headers(.init(headers: Self.hpack(head), endStream: !hasBody))), promise: nil)
        if hasBody {
            context.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer(string: body)), endStream: true))), promise: nil)
        }
        context.flush()
    }
}

/// Closes an HTTP/2 connection that has had no open stream for `timeout`, from its start or since its
/// last stream ended: HTTP/2's side of `limits.header_timeout` (HTTP/1 closes a connection that sends no
/// request head in time, also between keep-alive requests). Without it a client could complete the TLS
/// handshake or send the h2c preface and then hold the connection forever without a request. Sits after
/// `NIOHTTP2Handler`, which reports stream creation and closure as user events.
final class HTTP2IdleTimeoutHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    private let timeout: TimeAmount
    private var openStreams = 0
    private var lastStreamID = HTTP2StreamID.rootStream
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Added once the protocol is known (after ALPN or the h2c preface): the connection is active.
        if context.channel.isActive { self.arm(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.arm(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.cancel()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let created = event as? NIOHTTP2StreamCreatedEvent {
            self.openStreams += 1
            if created.streamID > self.lastStreamID { self.lastStreamID = created.streamID }
            self.cancel()
        } else if event is StreamClosedEvent {
            self.openStreams = max(0, self.openStreams - 1)
            if self.openStreams == 0 { self.arm(context: context) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func arm(context: ChannelHandlerContext) {
        self.cancel()
        let channel = context.channel
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.timer = context.eventLoop.scheduleTask(in: self.timeout) {
            let handler = loopBound.value
            guard handler.openStreams == 0 else { return }
            // GOAWAY (NO_ERROR) first, so that the client knows which streams were seen, then close.
            let goAway = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: handler.lastStreamID, errorCode: .noError, opaqueData: nil))
            channel.writeAndFlush(goAway).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func cancel() {
        self.timer?.cancel()
        self.timer = nil
    }
}
