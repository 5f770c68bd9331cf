import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// Serves one HTTP/2 stream (one request). A feed request becomes a `StreamSession` for which this
/// handler is the transport: events go out as DATA frames of the shared, unframed event buffers; the
/// stream's writability follows HTTP/2 flow control, so a client that stops reading exhausts its window,
/// goes over `max_queue`/`max_lag`, and only its stream is reset.
///
/// Under a connection with an `HTTP2DataWriter` (every connection the gateway serves), the stream's
/// frames go straight to the connection's HTTP/2 handler instead of through its stream channel, and the
/// handler keeps the stream's writability itself: the DATA bytes it handed over and not yet seen reach
/// the socket (`heldBytes`, confirmed by the write promises of some frames: `confirmations`) over a
/// 64 KiB high and 16 KiB low watermark, as the stream channel's own watermarks did. Bytes count against
/// the high watermark only once a flush has gone through (`checkHeld`): until the fan-out pass ends they
/// are held for every stream alike; after it, only for a stream whose client's window is shut, or when the
/// socket does not take them.
final class HTTP2StreamHandler: ChannelInboundHandler, StreamTransport {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let gateway: GatewayContext
    /// The listener's `delivery:`, when it sets one.
    private let delivery: DeliveryMode?
    private var context: ChannelHandlerContext?
    private var session: (any ClientSession)?
    private var answered = false
    /// The lag probe (see `heldSince`): when the probe in flight was issued; nil when none is.
    private var probeSince: NIODeadline?
    /// Set by the lag tick: the next DATA write carries a probe.
    private var probeArmedAt: NIODeadline?
    /// DATA was written since the last probe was issued, so a confirmed probe does not cover it.
    private var unprobedWrites = false

    /// The connection's direct path, when it has one (`HTTP2DataWriter`).
    private let dataWriter: HTTP2DataWriter?
    /// The writer and this stream's id once the stream takes the direct path; nil: frames go through the
    /// stream channel (a handler tested on its own, without a connection).
    private var direct: (writer: HTTP2DataWriter, streamID: HTTP2StreamID)?
    /// Direct path: DATA bytes handed to the connection and not yet confirmed written to the socket.
    private var heldBytes = 0
    /// Direct path: bytes written since the last write that carried a promise (no promise covers them yet).
    private var uncoveredBytes = 0
    /// Direct path: the promises in flight, oldest first (a stream's frames leave in order, so they
    /// complete in this order): when each was issued and the bytes it confirms.
    private var confirmations = CircularBuffer<(since: NIODeadline, covers: Int)>(initialCapacity: 2)
    /// Direct path: the stream's own writability, from `heldBytes` and the watermarks.
    private var directWritable = true
    /// Direct path: the writer will call `checkHeld` after its next flush that reaches the socket.
    private var awaitsCheck = false
    /// The stream channel's watermarks (`DownstreamPipeline.configureHTTP2`), for the direct path.
    static let highWatermark = 64 * 1024
    static let lowWatermark = 16 * 1024
    /// Direct path: a write that leaves this many bytes uncovered carries a promise, so that `heldBytes`
    /// stays current for a stream that keeps writing; past twice that held, every write carries one, so
    /// that a stream over the high watermark has all its bytes covered and turns writable again.
    static let checkpointBytes = 16 * 1024

    /// The connection's address (the PROXY source on a `proxy_protocol` listener); nil: the parent channel's peer.
    private let peer: ConnectionPeer?
    /// The connection is TLS (h2) or not (h2c), for the access log.
    private let tls: Bool

    init(
        gateway: GatewayContext,
        delivery: DeliveryMode? = nil,
        peer: ConnectionPeer? = nil,
        tls: Bool = false,
        dataWriter: HTTP2DataWriter? = nil
    ) {
        self.gateway = gateway
        self.dataWriter = dataWriter
        self.peer = peer
        self.tls = tls
        self.delivery = delivery
        LiveObjects.http2Streams.increment()
    }

    deinit {
        LiveObjects.http2Streams.decrement()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let writer = self.dataWriter,
            let streamID = try? context.channel.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID)
        {
            self.direct = (writer, streamID)
        }
    }

    /// Drops the context (which refers to this handler) when the stream's pipeline is torn down: kept,
    /// the two would keep each other and the stream's pipeline alive forever.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .headers(let frame) = self.unwrapInboundIn(data), !self.answered else { return }
        self.answered = true
        guard let head = Self.requestHead(frame.headers) else {
            let (response, body) = ResponseHead.plain(.badRequest, "bad request\n")
            if self.gateway.accessLog.isEnabled {
                self.gateway.accessLog.write(
                    AccessLogRecord.unparsed(
                        status: 400,
                        client: self.peer?.address
                            ?? (context.channel.parent ?? context.channel).remoteAddress?.ipAddress,
                        httpVersion: "HTTP/2",
                        tls: self.tls
                    )
                )
            }
            return self.respond(response, body: body)
        }
        let limits = self.gateway.limits
        // The real client: the connection's address, or what trusted proxies' forwarding headers say.
        let clientAddress = limits.trustedProxies.clientAddress(
            connection: self.peer?.address ?? (context.channel.parent ?? context.channel).remoteAddress?.ipAddress,
            headers: head.headers
        )
        let log = AccessLogRequest.make(head, tls: self.tls, log: self.gateway.accessLog)
        switch RequestRouter(
            registry: self.gateway.registry,
            listenerDelivery: self.delivery,
            limits: limits
        ).route(head) {
        case .respond(let response, let body, _):
            self.gateway.routerAnswered(
                log,
                response,
                client: clientAddress,
                bodyBytes: head.method == .HEAD ? 0 : body.utf8.count
            )
            self.respond(response, body: body, headOnly: head.method == .HEAD)
        case .multi(var request):
            request.clientAddress = clientAddress
            request.log = log
            self.start(
                MultiSession.admission(request, gateway: self.gateway, transport: self, loop: context.eventLoop),
                logAs: request.accessLogSubject
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
                context.writeAndFlush(
                    self.wrapOutboundOut(.headers(.init(headers: Self.hpack(response), endStream: true))),
                    promise: nil
                )
                return
            }
            self.start(
                StreamSession.admission(request, gateway: self.gateway, transport: self, loop: context.eventLoop),
                logAs: request.accessLogSubject
            )
        }
    }

    /// Records and begins an admitted session, or answers its refusal (access-logged as `subject`).
    private func start(_ admission: SessionAdmission<some ClientSession>, logAs subject: AccessLogSubject?) {
        switch admission {
        case .admitted(let session):
            self.session = session
            session.begin()
        case .refused(let response, let body, let reason):
            self.gateway.accessLog.writeRefusal(subject, response, body: body, reason: reason)
            self.respond(response, body: body)
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
        if !AccessLogRecord.isPeerClose(error) { self.session?.transportFailed(error) }
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
        return HTTPRequestHead(
            version: HTTPVersion(major: 2, minor: 0),
            method: HTTPMethod(rawValue: method),
            uri: path,
            headers: regular
        )
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
    var isWritable: Bool {
        guard let context = self.context else { return false }
        return context.channel.isWritable && (self.direct == nil || self.directWritable)
    }
    /// DATA bytes of the stream (one integer add per write; read by the access log at the stream's end).
    private(set) var bytesWritten = 0

    func writeHead(_ head: ResponseHead) {
        let headers = HTTP2Frame.FramePayload.headers(.init(headers: Self.hpack(head)))
        if let direct = self.direct {
            // The DATA frames after it take the same path, so they cannot overtake it.
            guard self.context != nil else { return }
            return direct.writer.write(HTTP2Frame(streamID: direct.streamID, payload: headers), promise: nil)
        }
        self.context?.write(self.wrapOutboundOut(headers), promise: nil)
    }

    /// A plain write: the subscriber flushes a large batch in 32 KiB pieces (below the stream's 64 KiB
    /// watermark), so a stream turns unwritable only when the client's flow-control windows are full.
    func writeShared(_ bytes: ByteBuffer) {
        guard let context = self.context else { return }
        self.bytesWritten += bytes.readableBytes
        if let direct = self.direct {
            return self.writeDirect(bytes, via: direct, context: context)
        }
        let frame = self.wrapOutboundOut(.data(.init(data: .byteBuffer(bytes))))
        guard self.probeArmedAt != nil, self.probeSince == nil else {
            self.unprobedWrites = true
            return context.write(frame, promise: nil)
        }
        self.probeArmedAt = nil
        context.write(frame, promise: self.issueProbe(since: .now(), context: context))
    }

    /// A DATA frame straight to the connection's HTTP/2 handler, with a promise when the lag probe is armed,
    /// at a checkpoint, or while much is held (`checkpointBytes`); past the high watermark the stream turns
    /// unwritable (its subscriber queues) until the promises confirm it is back under the low one.
    private func writeDirect(
        _ bytes: ByteBuffer,
        via direct: (writer: HTTP2DataWriter, streamID: HTTP2StreamID),
        context: ChannelHandlerContext
    ) {
        self.heldBytes += bytes.readableBytes
        self.uncoveredBytes += bytes.readableBytes
        var promise: EventLoopPromise<Void>?
        if self.probeArmedAt != nil || self.uncoveredBytes >= Self.checkpointBytes
            || self.heldBytes > 2 * Self.checkpointBytes
        {
            self.probeArmedAt = nil
            promise = self.confirm(since: .now(), context: context)
        }
        direct.writer.write(
            HTTP2Frame(streamID: direct.streamID, payload: .data(.init(data: .byteBuffer(bytes)))),
            promise: promise
        )
        if self.directWritable && !self.awaitsCheck && self.heldBytes > Self.highWatermark {
            // Not unwritable yet: during a fan-out pass nothing reaches the socket until the pass ends, so
            // every stream holds what the pass wrote to it. What is still held once the writer's flush has
            // gone through is held by the client (its window) or the socket: then `checkHeld` decides.
            self.awaitsCheck = true
            direct.writer.checkAfterFlush(self)
        }
    }

    /// Called by the writer after a flush that went through to the socket: still over the high watermark,
    /// the stream turns unwritable (its subscriber queues, against `max_queue` and `max_lag`).
    func checkHeld() {
        self.awaitsCheck = false
        guard self.directWritable, self.heldBytes > Self.highWatermark else { return }
        self.directWritable = false
        self.session?.writabilityChanged()
    }

    /// A promise for the next direct write, confirming every byte written up to it.
    private func confirm(since: NIODeadline, context: ChannelHandlerContext) -> EventLoopPromise<Void> {
        self.confirmations.append((since, self.uncoveredBytes))
        self.uncoveredBytes = 0
        let written = context.eventLoop.makePromise(of: Void.self)
        // The promise completes on this loop; a weak box so that it never keeps a closed stream's handler.
        let handler = NIOLoopBound(WeakHandler(self), eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in handler.value.handler?.confirmed() }
        return written
    }

    /// The oldest promise's write completed (or failed: the stream or connection is gone): what it covered
    /// has reached the socket; an unwritable stream turns writable under the low watermark.
    private func confirmed() {
        guard let confirmation = self.confirmations.popFirst() else { return }
        self.heldBytes = max(0, self.heldBytes - confirmation.covers)
        if !self.directWritable && self.heldBytes <= Self.lowWatermark {
            self.directWritable = true
            self.session?.writabilityChanged()
        }
    }

    /// Whether this stream's DATA is leaving HTTP/2 flow control, at one promise per stream per tick, not
    /// per write. Frames of a stream leave in order, so once NIO fulfils a probe's write promise (the frame
    /// went to the connection), everything written before it has gone too; until then, the probe's write
    /// and all after it are held. Each tick arms a probe for the next write; a stream that has written
    /// since its last probe and then stays quiet for a whole tick gets an empty DATA frame as its probe,
    /// so a window shut by a burst on a quiet feed is noticed within `max_lag` and two ticks.
    func heldSince() -> NIODeadline? {
        if let direct = self.direct { return self.heldSinceDirect(via: direct) }
        if let since = self.probeSince { return since }
        guard let context = self.context else { return nil }
        guard let armedAt = self.probeArmedAt else {
            self.probeArmedAt = .now()
            return nil
        }
        if self.unprobedWrites {
            // Nothing written since the last tick; what was written before is unconfirmed.
            self.probeArmedAt = nil
            let empty = self.wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()))))
            context.writeAndFlush(empty, promise: self.issueProbe(since: armedAt, context: context))
        }
        return nil
    }

    /// `heldSince` on the direct path: the oldest promise in flight says since when bytes are held; with
    /// none, the same arming as above, and a quiet stream's uncovered bytes get an empty DATA frame.
    private func heldSinceDirect(via direct: (writer: HTTP2DataWriter, streamID: HTTP2StreamID)) -> NIODeadline? {
        if let oldest = self.confirmations.first { return oldest.since }
        guard let context = self.context else { return nil }
        guard let armedAt = self.probeArmedAt else {
            self.probeArmedAt = .now()
            return nil
        }
        if self.uncoveredBytes > 0 {
            self.probeArmedAt = nil
            let promise = self.confirm(since: armedAt, context: context)
            direct.writer.write(
                HTTP2Frame(streamID: direct.streamID, payload: .data(.init(data: .byteBuffer(ByteBuffer())))),
                promise: promise
            )
            direct.writer.flush()
        }
        return nil
    }

    private func issueProbe(since: NIODeadline, context: ChannelHandlerContext) -> EventLoopPromise<Void> {
        self.probeSince = since
        self.unprobedWrites = false
        let written = context.eventLoop.makePromise(of: Void.self)
        // The promise completes on this loop; a weak box so that a probe never keeps a closed stream's handler.
        let handler = NIOLoopBound(WeakHandler(self), eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in handler.value.handler?.probeSince = nil }
        return written
    }

    func writePayload(_ bytes: ByteBuffer) {
        self.writeShared(bytes)
    }

    func flush() {
        if let direct = self.direct { return direct.writer.flush() }
        self.context?.flush()
    }

    func abort() {
        // Closing an open stream channel sends RST_STREAM (CANCEL); the connection and its other streams stay.
        self.context?.close(promise: nil)
    }

    func finish() {
        if let direct = self.direct {
            guard self.context != nil else { return }
            let end = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))
            direct.writer.write(HTTP2Frame(streamID: direct.streamID, payload: end), promise: nil)
            return direct.writer.flush()
        }
        self.context?.writeAndFlush(
            self.wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))),
            promise: nil
        )
    }

    func respond(_ head: ResponseHead, body: String) {
        self.respond(head, body: body, headOnly: false)
    }

    /// HEADERS with `content-length`, then the body as one DATA frame with END_STREAM.
    func respondComplete(_ head: ResponseHead, body: ByteBuffer) {
        guard let context = self.context else { return }
        var head = head
        head.headers.append(("Content-Length", String(body.readableBytes)))
        let empty = body.readableBytes == 0
        context.write(self.wrapOutboundOut(.headers(.init(headers: Self.hpack(head), endStream: empty))), promise: nil)
        if !empty {
            context.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(body), endStream: true))), promise: nil)
        }
        context.flush()
    }

    /// `headOnly` (HEAD): the GET's headers, Content-Length included (RFC 9110 §9.3.2), and no DATA.
    private func respond(_ head: ResponseHead, body: String, headOnly: Bool) {
        guard let context = self.context else { return }
        let hasBody = !body.isEmpty && !headOnly
        var head = head
        if head.status.code >= 200 && head.status.code != 204 && head.status.code != 304 {
            head.headers.append(("Content-Length", String(body.utf8.count)))
        }
        context.write(
            self.wrapOutboundOut(.headers(.init(headers: Self.hpack(head), endStream: !hasBody))),
            promise: nil
        )
        if hasBody {
            context.write(
                self.wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer(string: body)), endStream: true))),
                promise: nil
            )
        }
        context.flush()
    }
}

extension HTTP2StreamHandler {
    /// A weak reference to the handler, for callbacks that must not keep it alive.
    fileprivate struct WeakHandler {
        weak var handler: HTTP2StreamHandler?
        init(_ handler: HTTP2StreamHandler) { self.handler = handler }
    }
}
