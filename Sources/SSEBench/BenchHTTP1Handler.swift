import NIOCore

/// One HTTP/1.1 SSE client of the load tool as the only handler of its connection: it writes the request
/// as prepared bytes, parses the response head by hand, undoes the body framing itself (chunked, a
/// Content-Length or read-until-close) and feeds the body to the event scanner. No HTTP codec handlers,
/// so a read costs one handler call and no per-part allocations. A poll client sends its next request on
/// the same connection when a response has ended, after the response's `retry:` as `EventSource` does.
/// A reconnecting client's handler borrows the client's receiver when its connection opens, sends the
/// last event id with the request, and hands the receiver back when the connection ends.
final class BenchHTTP1Handler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Body {
        /// Waiting for the response head; the bytes of a head split over reads so far.
        case head(partial: ByteBuffer?)
        case chunked(ChunkedBodyDecoder)
        case length(remaining: Int)
        case untilClose
        case finished
    }

    private let request: BenchHTTP1Request
    private var receiver: BenchStreamReceiver
    private var body = Body.head(partial: nil)
    private var requested = false
    /// The next poll's timer (poll clients, between responses).
    private var nextPoll: Scheduled<Void>?
    /// The reconnecting client whose receiver this connection has borrowed (`--reconnect`).
    private let client: BenchReconnectingClient?
    private var borrowed = false

    init(
        request: BenchHTTP1Request,
        loop: BenchLoopTally,
        mode: BenchClientMode = BenchClientMode(),
        client: BenchReconnectingClient? = nil
    ) {
        self.request = request
        self.receiver = BenchStreamReceiver(loop: loop, mode: mode)
        self.client = client
    }

    /// Added to an open connection (after a TLS handshake): the request goes out at once.
    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.sendRequest(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.sendRequest(context: context)
        context.fireChannelActive()
    }

    private func sendRequest(context: ChannelHandlerContext) {
        guard !self.requested else { return }
        self.requested = true
        if let client = self.client, let receiver = client.lendReceiver() {
            self.receiver = receiver
            self.borrowed = true
        }
        context.writeAndFlush(
            self.wrapOutboundOut(self.request.bytes(lastEventID: self.receiver.resumeID)),
            promise: nil
        )
        self.receiver.requestSent()
    }

    /// After a finished poll response: the next request once the retry time has passed.
    private func schedulePoll(_ next: BenchStreamReceiver.NextPoll, context: ChannelHandlerContext) {
        self.body = .head(partial: nil)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.nextPoll = context.eventLoop.scheduleTask(in: .milliseconds(Int64(next.delayMillis))) {
            let (handler, context) = loopBound.value
            handler.nextPoll = nil
            guard context.channel.isActive else { return }
            let request = handler.request.bytes(lastEventID: next.lastEventID)
            context.writeAndFlush(handler.wrapOutboundOut(request), promise: nil)
            handler.receiver.requestSent()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        do {
            // A head not all in yet waits for more; a non-200 head finishes the client (closed below: a
            // balancer keeps its side of the connection open after a 503, the client must close it).
            if case .head(let partial) = self.body, try !self.readHead(from: &buffer, partial: partial) {
                guard case .finished = self.body else { return }
            } else {
                try self.readBody(from: &buffer)
            }
        } catch {
            self.receiver.malformed()
            self.body = .finished
        }
        guard case .finished = self.body else { return }
        if let next = self.receiver.responseEnded() {
            self.schedulePoll(next, context: context)
        } else {
            context.close(promise: nil)
        }
    }

    /// The last handler: nothing after it wants to hear of the end of a read, so the event stops here.
    func channelReadComplete(context: ChannelHandlerContext) {}

    /// Parses the head once all of it is in; returns whether body bytes may follow in `buffer`.
    /// Interim 1xx heads (`103 Early Hints`) are skipped: the final head follows them. `101 Switching
    /// Protocols` is final, and not the 200 asked for.
    private func readHead(from buffer: inout ByteBuffer, partial: ByteBuffer?) throws -> Bool {
        if var partial {
            partial.writeBuffer(&buffer)
            buffer = partial
        }
        var parsed = try buffer.withUnsafeReadableBytes { try HTTPResponseHead.parse($0) }
        while let (interim, length) = parsed, (100...199).contains(interim.status), interim.status != 101 {
            buffer.moveReaderIndex(forwardBy: length)
            parsed = try buffer.withUnsafeReadableBytes { try HTTPResponseHead.parse($0) }
        }
        guard let (head, length) = parsed else {
            self.body = .head(partial: buffer.readableBytes > 0 ? buffer : nil)
            return false
        }
        buffer.moveReaderIndex(forwardBy: length)
        guard self.receiver.head(status: head.status, gzip: head.gzip, retryAfterSeconds: head.retryAfterSeconds) else {
            self.body = .finished
            return false
        }
        switch head.framing {
        case .chunked: self.body = .chunked(ChunkedBodyDecoder())
        case .length(let count): self.body = count > 0 ? .length(remaining: count) : .finished
        case .untilClose: self.body = .untilClose
        }
        return true
    }

    private func readBody(from buffer: inout ByteBuffer) throws {
        switch self.body {
        case .chunked(var decoder):
            try decoder.decode(&buffer) { try self.receiver.body($0) }
            self.body = decoder.isFinished ? .finished : .chunked(decoder)
        case .length(let remaining):
            let count = min(remaining, buffer.readableBytes)
            try self.receiver.body(buffer.readSlice(length: count)!)
            self.body = remaining == count ? .finished : .length(remaining: remaining - count)
        case .untilClose:
            try self.receiver.body(buffer)
        case .head, .finished:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.nextPoll?.cancel()
        self.nextPoll = nil
        self.receiver.closed()
        if self.borrowed, let client = self.client {
            self.borrowed = false
            client.attemptEnded(self.receiver)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
