import NIOCore
import NIOHTTP1

/// Serves one HTTP/1.x connection: routes each request and answers the non-stream ones; a feed request
/// becomes a `StreamSession` for which this handler is the transport, writing the shared, pre-framed
/// event buffers straight to the socket (no HTTP encoder on the hot path: the response head and chunk
/// framing are encoded by the gateway once). When a stream starts, the request-side handlers (the head
/// size limiter and the HTTP decoder) leave the pipeline: every write and flush of the stream then goes
/// from this handler straight to the channel (or the TLS handler) instead of walking past them.
final class HTTP1StreamHandler: ChannelInboundHandler, StreamTransport {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = ByteBuffer

    private enum State {
        /// Waiting for a request head (the header timer runs).
        case idle
        /// A response was written; skip the request body until `.end`, then wait for the next head.
        case discardingBody(close: Bool)
        /// The connection carries a stream from now on; anything the client sends is ignored.
        case streaming(any ClientSession)
        /// A poll request waits for its answer (SPEC §6a); the request parsers stay, for the next request.
        /// `requestEnded`: its `.end` arrived, so the connection is idle once the answer is written.
        case polling(any ClientSession, requestEnded: Bool)
        case closed
    }

    private let gateway: GatewayContext
    private let limiter: HeadSizeLimiter?
    /// The listener's `delivery:`, when it sets one.
    private let delivery: DeliveryMode?
    /// Handlers between the channel and this one that only serve request parsing (limiter, decoder).
    private let requestHandlers: [RemovableChannelHandler]
    private var state = State.idle
    private var context: ChannelHandlerContext?
    private var headerTimer: Scheduled<Void>?
    private(set) var framing: StreamFraming = .chunked
    /// The client sent `Connection: close` (or spoke HTTP/1.0): the stream's head says `close`.
    private var clientWantsClose = false
    /// The connection's address (the PROXY source on a `proxy_protocol` listener); nil: the channel's peer.
    private let peer: ConnectionPeer?
    /// The connection is TLS (for the access log).
    private let tls: Bool

    init(
        gateway: GatewayContext,
        limiter: HeadSizeLimiter?,
        requestHandlers: [RemovableChannelHandler] = [],
        delivery: DeliveryMode? = nil,
        peer: ConnectionPeer? = nil,
        tls: Bool = false
    ) {
        self.gateway = gateway
        self.peer = peer
        self.tls = tls
        self.delivery = delivery
        self.limiter = limiter
        self.requestHandlers = requestHandlers
        LiveObjects.http1Connections.increment()
    }

    deinit {
        LiveObjects.http1Connections.decrement()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { self.armHeaderTimer(context: context) }
    }

    /// The context refers to this handler: keeping it past removal (the pipeline is torn down when the
    /// connection closes) would make a cycle that keeps both, the decoder and the limiter forever.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.headerTimer?.cancel()
        self.headerTimer = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        self.armHeaderTimer(context: context)
        context.fireChannelActive()
    }

    /// `idle`: the connection answered a request and waits for the next one (keep-alive), which
    /// `limits.idle_connection_timeout` bounds; otherwise a request head (or body) is under way or awaited
    /// first, which `limits.header_timeout` bounds.
    private func armHeaderTimer(context: ChannelHandlerContext, idle: Bool = false) {
        self.headerTimer?.cancel()
        let channel = context.channel
        let limits = self.gateway.limits
        let gateway = self.gateway
        let timeout = idle ? limits.idleConnectionTimeout ?? limits.headerTimeout : limits.headerTimeout
        self.headerTimer = context.eventLoop.scheduleTask(in: timeout) {
            if idle { gateway.countIdleConnectionClose() }
            channel.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A stream never ends from the client side: once it started, the decoder is gone and whatever the
        // client sends arrives as raw bytes, ignored unread.
        if case .streaming = self.state { return }
        if case .closed = self.state { return }
        let part = self.unwrapInboundIn(data)
        switch (self.state, part) {
        case (.idle, .head(let head)):
            self.headerTimer?.cancel()
            self.headerTimer = nil
            self.limiter?.headReceived()
            self.handle(head, context: context)
        case (.idle, _):
            break
        case (.discardingBody(let close), .end):
            if close {
                self.state = .closed
                context.close(promise: nil)
            } else {
                self.state = .idle
                self.limiter?.expectHead()
                self.armHeaderTimer(context: context, idle: true)
            }
        case (.polling(let session, _), .end):
            self.state = .polling(session, requestEnded: true)
        case (.polling(let session, _), .head):
            // A pipelined request behind a waiting poll: EventSource never sends one; not supported.
            self.state = .closed
            session.transportClosed()
            context.close(promise: nil)
        case (.discardingBody, _), (.streaming, _), (.polling, _), (.closed, _):
            break
        }
    }

    private func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let clientWantsClose = !head.isKeepAlive
        let limits = self.gateway.limits
        // The real client: the connection's address, or what trusted proxies' forwarding headers say.
        let clientAddress = limits.trustedProxies.clientAddress(
            connection: self.peer?.address ?? context.channel.remoteAddress?.ipAddress,
            headers: head.headers
        )
        let log = AccessLogRequest.make(head, tls: self.tls, log: self.gateway.accessLog)
        switch RequestRouter(
            registry: self.gateway.registry,
            listenerDelivery: self.delivery,
            limits: limits
        ).route(head) {
        case .respond(let response, let body, let close):
            self.gateway.routerAnswered(
                log,
                response,
                client: clientAddress,
                bodyBytes: head.method == .HEAD ? 0 : body.utf8.count
            )
            self.respond(
                response,
                body: body,
                close: close || clientWantsClose,
                headOnly: head.method == .HEAD,
                context: context
            )
        case .multi(var request):
            request.clientAddress = clientAddress
            request.log = log
            self.framing = request.http10 ? .raw : .chunked
            self.clientWantsClose = clientWantsClose
            self.start(
                MultiSession.admission(request, gateway: self.gateway, transport: self, loop: context.eventLoop),
                poll: request.poll != nil,
                logAs: request.accessLogSubject,
                context: context
            )
        case .stream(var request):
            request.clientAddress = clientAddress
            request.log = log
            if request.headOnly {
                if let record = request.accessLogSubject?.record(status: 200, end: .answered) {
                    self.gateway.accessLog.write(record)
                }
                var response = ResponseHead.eventStream()
                response.headers += request.corsHeaders
                response.headers.append(("Connection", clientWantsClose ? "close" : "keep-alive"))
                self.writeEncodedHead(response, context: context)
                context.flush()
                self.state = .discardingBody(close: clientWantsClose)
                self.armHeaderTimer(context: context)
                return
            }
            self.framing = request.http10 ? .raw : .chunked
            self.clientWantsClose = clientWantsClose
            self.start(
                StreamSession.admission(request, gateway: self.gateway, transport: self, loop: context.eventLoop),
                poll: request.poll != nil,
                logAs: request.accessLogSubject,
                context: context
            )
        }
    }

    /// Begins an admitted session: a stream takes over the connection (the request parsers leave), a poll
    /// keeps them for the next request; or answers its refusal (access-logged as `subject`) and closes.
    private func start(
        _ admission: SessionAdmission<some ClientSession>,
        poll: Bool,
        logAs subject: AccessLogSubject?,
        context: ChannelHandlerContext
    ) {
        switch admission {
        case .admitted(let session):
            if poll {
                self.state = .polling(session, requestEnded: false)
            } else {
                self.state = .streaming(session)
                self.removeRequestHandlers(context: context)
            }
            session.begin()
        case .refused(let response, let body, let reason):
            self.gateway.accessLog.writeRefusal(subject, response, body: body, reason: reason)
            self.respond(response, body: body, close: true, headOnly: false, context: context)
        }
    }

    /// The access log line of an answer the router gave itself (404, 405, 400, OPTIONS, ...).
    /// The connection carries one stream from now on: nothing more is parsed, so the request-side
    /// handlers leave and the stream's writes reach the channel in one step.
    private func removeRequestHandlers(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        for handler in self.requestHandlers {
            pipeline.removeHandler(handler, promise: nil)
        }
    }

    private func writeEncodedHead(_ response: ResponseHead, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 256)
        response.encodeHTTP1(into: &buffer)
        context.write(self.wrapOutboundOut(buffer), promise: nil)
    }

    private func respond(
        _ response: ResponseHead,
        body: String,
        close: Bool,
        headOnly: Bool,
        context: ChannelHandlerContext
    ) {
        var response = response
        // RFC 9110 §8.6: no Content-Length in a 1xx or 204 response (a 204 preflight must not carry one).
        let code = response.status.code
        if code >= 200 && code != 204 && code != 304 {
            response.headers.append(("Content-Length", String(body.utf8.count)))
        }
        if close { response.headers.append(("Connection", "close")) }
        var buffer = context.channel.allocator.buffer(capacity: 256 + body.utf8.count)
        response.encodeHTTP1(into: &buffer)
        if !headOnly { buffer.writeString(body) }
        self.state = .discardingBody(close: close)
        // The rest of the request (a body) must arrive within the header timeout too, or a client could
        // hold the connection forever by announcing a body and never sending it.
        self.armHeaderTimer(context: context)
        let written = context.writeAndFlush(self.wrapOutboundOut(buffer))
        if close {
            let context = context.loopBound
            written.whenComplete { _ in context.value.close(promise: nil) }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // A poll collects in memory: writability does not concern it.
        if case .streaming(let session) = self.state {
            session.writabilityChanged()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.headerTimer?.cancel()
        self.headerTimer = nil
        switch self.state {
        case .streaming(let session):
            session.transportClosed()
        case .polling(let session, _):
            session.transportClosed()
        case .idle, .discardingBody, .closed:
            break
        }
        self.state = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        switch self.state {
        case .idle, .discardingBody:
            if let parserError = error as? HTTPParserError {
                let status: HTTPResponseStatus =
                    parserError == .headerOverflow
                    ? .init(statusCode: 431, reasonPhrase: "Request Header Fields Too Large") : .badRequest
                let (response, body) = ResponseHead.plain(status, "bad request\n")
                if self.gateway.accessLog.isEnabled {
                    var record = AccessLogRecord.unparsed(
                        status: Int(status.code),
                        client: self.peer?.address ?? context.channel.remoteAddress?.ipAddress,
                        httpVersion: "HTTP/1.1",
                        tls: self.tls
                    )
                    record.bytes = body.utf8.count
                    self.gateway.accessLog.write(record)
                }
                self.respond(response, body: body, close: true, headOnly: false, context: context)
                self.state = .closed
                return
            }
        case .polling:
            break
        case .streaming(let session):
            // Bytes the client sent after its stream request, parsed before the decoder had left the
            // pipeline (same segment, or before its removal completed): ignored like any later bytes.
            if error is HTTPParserError || error is ByteToMessageDecoderError { return }
            if !AccessLogRecord.isPeerClose(error) { session.transportFailed(error) }
        case .closed:
            break
        }
        context.close(promise: nil)
    }

    // MARK: StreamTransport

    var isWritable: Bool { self.context?.channel.isWritable ?? false }
    /// Body bytes of the stream, chunk framing included (one integer add per write; read by the access log
    /// at the stream's end).
    private(set) var bytesWritten = 0
    /// The socket takes what a connection writes until the kernel's buffer is full, and then the channel
    /// turns unwritable: the queue's own lag check covers it.
    func heldSince() -> NIODeadline? { nil }

    func writeHead(_ head: ResponseHead) {
        guard let context = self.context else { return }
        var head = head
        if self.framing == .chunked {
            // RFC 9112 §9.6: a client that sent `close` gets `close` back (the stream stays chunked).
            head.headers.append(("Connection", self.clientWantsClose ? "close" : "keep-alive"))
            head.headers.append(("Transfer-Encoding", "chunked"))
        } else {
            head.headers.append(("Connection", "close"))
        }
        self.writeEncodedHead(head, context: context)
    }

    func writeShared(_ bytes: ByteBuffer) {
        self.bytesWritten += bytes.readableBytes
        self.context?.write(self.wrapOutboundOut(bytes), promise: nil)
    }

    func writePayload(_ bytes: ByteBuffer) {
        guard let context = self.context else { return }
        let framed = self.framing.frame(bytes, allocator: context.channel.allocator)
        self.bytesWritten += framed.readableBytes
        context.write(self.wrapOutboundOut(framed), promise: nil)
    }

    func flush() {
        self.context?.flush()
    }

    func abort() {
        self.context?.close(promise: nil)
    }

    func finish() {
        guard let context = self.context else { return }
        if self.framing == .chunked {
            context.write(self.wrapOutboundOut(ByteBuffer(staticString: "0\r\n\r\n")), promise: nil)
        }
        let bound = context.loopBound
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer())).whenComplete { _ in bound.value.close(promise: nil) }
    }

    func respond(_ head: ResponseHead, body: String) {
        guard let context = self.context else { return }
        if case .polling(_, let requestEnded) = self.state {
            // A refused poll (401, 403, 503): its request parsers are still here, the connection may go on.
            self.respond(head, body: body, close: self.clientWantsClose, headOnly: false, context: context)
            return self.pollAnswered(requestEnded: requestEnded, context: context)
        }
        self.respond(head, body: body, close: true, headOnly: false, context: context)
        self.state = .closed
    }

    func respondComplete(_ head: ResponseHead, body: ByteBuffer) {
        guard let context = self.context, case .polling(_, let requestEnded) = self.state else { return }
        var head = head
        head.headers.append(("Content-Length", String(body.readableBytes)))
        // RFC 9112 §9.6: a client that sent `close` gets `close` back. A draining gateway closes too, so
        // the next poll goes to a new connection (another replica) instead of this one.
        let close = self.clientWantsClose || self.gateway.draining
        head.headers.append(("Connection", close ? "close" : "keep-alive"))
        var buffer = context.channel.allocator.buffer(capacity: 256 + body.readableBytes)
        head.encodeHTTP1(into: &buffer)
        buffer.writeImmutableBuffer(body)
        self.state = .discardingBody(close: close)
        let written = context.writeAndFlush(self.wrapOutboundOut(buffer))
        if close {
            let bound = context.loopBound
            written.whenComplete { _ in bound.value.close(promise: nil) }
        }
        self.pollAnswered(requestEnded: requestEnded, context: context)
    }

    /// A poll's answer is written (`respond` set `discardingBody`): when its request already ended, the
    /// connection waits for the next head at once, under the header timer.
    private func pollAnswered(requestEnded: Bool, context: ChannelHandlerContext) {
        self.armHeaderTimer(context: context)
        guard requestEnded, case .discardingBody(close: false) = self.state else { return }
        self.state = .idle
        self.limiter?.expectHead()
        // Answered and the request is over: the poll client comes back after `retry:` on this connection.
        self.armHeaderTimer(context: context, idle: true)
    }
}
