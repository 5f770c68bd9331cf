import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SSE

/// What an upstream connection reports to its feed. Called on the feed's event loop.
protocol UpstreamDelegate: AnyObject {
    /// Events parsed from one read burst, in order.
    func upstreamReceived(_ events: [ServerSentEvent])
    func upstreamStateChanged(_ state: UpstreamStateMachine.State, failure: UpstreamFailure?)
}

/// One feed's single upstream connection: connects, sends the SSE request (with `Last-Event-ID` on every
/// reconnect), parses the stream, and reconnects with backoff. Lives on the feed's event loop; the state
/// decisions are made by `UpstreamStateMachine`, this class only carries them out.
final class UpstreamClient {
    let loop: EventLoop
    let url: UpstreamURL
    let settings: UpstreamSettings
    private let tlsContext: NIOSSLContext?
    private let tlsError: Error?
    private var logger: Logger
    weak var delegate: UpstreamDelegate?

    private var machine: UpstreamStateMachine
    private var channel: Channel?
    private var retryTask: Scheduled<Void>?
    /// Fires `backoff.reset_after` into a stream: the upstream counts as healthy from then on.
    private var stableTask: Scheduled<Void>?
    /// Incremented per connection attempt; callbacks of an older attempt are ignored.
    private var generation = 0
    var parser: SSEParser
    /// Reconnects made, for `/metrics`.
    private(set) var reconnects = 0

    var state: UpstreamStateMachine.State { self.machine.state }
    /// The id of the last dispatched event (the standard's "last event ID string"), sent as `Last-Event-ID`
    /// on reconnect. Not the parser's id buffer: an `id:` line of an event cut off by a closed stream must
    /// not move the resume point past an event nobody received.
    private(set) var lastEventID = ""

    init(
        loop: EventLoop,
        url: UpstreamURL,
        settings: UpstreamSettings,
        tlsContext: Result<NIOSSLContext, Error>?,
        logger: Logger
    ) {
        self.loop = loop
        self.url = url
        self.settings = settings
        switch tlsContext {
        case .success(let context): (self.tlsContext, self.tlsError) = (context, nil)
        case .failure(let error): (self.tlsContext, self.tlsError) = (nil, error)
        case nil: (self.tlsContext, self.tlsError) = (nil, nil)
        }
        self.logger = logger
        self.logger[metadataKey: "upstream"] = "\(url)"
        self.machine = UpstreamStateMachine(
            initialBackoff: settings.backoffInitial,
            maxBackoff: settings.backoffMax,
            resetAfter: settings.backoffResetAfter
        )
        let limit = max(settings.maxEventSize, 64)
        self.parser = SSEParser(limits: .init(maxLineBytes: limit, maxEventBytes: limit))
    }

    func start() {
        self.loop.preconditionInEventLoop()
        self.run(self.machine.start())
    }

    func stop() {
        self.loop.preconditionInEventLoop()
        self.run(self.machine.stop(at: .now()))
        self.delegate?.upstreamStateChanged(self.machine.state, failure: nil)
    }

    private func run(_ action: UpstreamStateMachine.Action) {
        switch action {
        case .none:
            break
        case .connect:
            self.connect()
        case .reconnectAfter(let delay):
            self.closeChannel()
            self.retryTask?.cancel()
            self.retryTask = self.loop.scheduleTask(in: delay) { [weak self] in
                guard let self else { return }
                self.retryTask = nil
                self.reconnects += 1
                self.run(self.machine.retryTimerFired())
            }
        case .close:
            self.retryTask?.cancel()
            self.retryTask = nil
            self.closeChannel()
        }
    }

    private func closeChannel() {
        self.stableTask?.cancel()
        self.stableTask = nil
        self.generation += 1
        if let channel = self.channel {
            self.channel = nil
            channel.close(promise: nil)
        }
    }

    private func connect() {
        self.generation += 1
        let generation = self.generation
        self.parser.reset()
        self.delegate?.upstreamStateChanged(self.machine.state, failure: nil)
        if self.url.isTLS && self.tlsContext == nil {
            self.fail(
                .error("TLS setup failed: \(self.tlsError.map { "\($0)" } ?? "no context")"),
                generation: generation
            )
            return
        }
        let tlsContext = self.tlsContext
        let serverName = UpstreamTLS.serverName(for: self.url.host)
        let idleTimeout = self.settings.idleTimeout
        ClientBootstrap(group: self.loop)
            .connectTimeout(self.settings.connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { [weak self] channel in
                guard let self else { return channel.eventLoop.makeSucceededVoidFuture() }
                do {
                    let sync = channel.pipeline.syncOperations
                    if let tlsContext {
                        try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: serverName))
                    }
                    try sync.addHTTPClientHandlers(leftOverBytesStrategy: .dropBytes)
                    try sync.addHandler(IdleStateHandler(readTimeout: idleTimeout))
                    try sync.addHandler(UpstreamStreamHandler(client: self, generation: generation))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: self.url.host, port: self.url.port)
            .whenComplete { [weak self] result in
                guard let self else { return }
                switch result {
                case .success(let channel):
                    if generation == self.generation {
                        self.channel = channel
                    } else {
                        channel.close(promise: nil)
                    }
                case .failure(let error):
                    self.fail(.connectFailed(Self.describe(connectError: error)), generation: generation)
                }
            }
    }

    /// A short reason for logs: "connection refused", "timed out", not NIO's nested error types.
    static func describe(connectError error: Error) -> String {
        if let connection = error as? NIOConnectionError {
            if let first = connection.connectionErrors.first {
                return Self.describe(connectError: first.error)
            }
            if let dns = connection.dnsAError ?? connection.dnsAAAAError {
                return "cannot resolve \(connection.host): \(dns)"
            }
        }
        if let io = error as? IOError {
            return String(cString: strerror(io.errnoCode)).lowercased()
        }
        if case ChannelError.connectTimeout(let timeout) = error {
            return "timed out after \(timeout.nanoseconds / 1_000_000) ms"
        }
        return "\(error)"
    }

    /// The request head: SSE headers, the configured ones, and `Last-Event-ID` when resuming.
    func requestHead() -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: self.url.hostHeader)
        headers.add(name: "Accept", value: "text/event-stream")
        headers.add(name: "Cache-Control", value: "no-cache")
        headers.add(name: "User-Agent", value: "ssegate")
        if let authorization = self.url.basicAuthorization {
            headers.add(name: "Authorization", value: authorization)
        }
        for header in self.settings.headers {
            headers.replaceOrAdd(name: header.name, value: header.value)
        }
        let lastEventID = self.lastEventID
        if !lastEventID.isEmpty {
            headers.replaceOrAdd(name: "Last-Event-ID", value: lastEventID)
        }
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: self.url.target, headers: headers)
    }

    // MARK: Callbacks from UpstreamStreamHandler (on `loop`)

    func isCurrent(_ generation: Int) -> Bool { generation == self.generation }

    func streamStarted(generation: Int) {
        guard generation == self.generation else { return }
        if self.machine.streamStarted(at: .now()) {
            self.logger.info("upstream connected")
        }
        self.stableTask?.cancel()
        self.stableTask = self.loop.scheduleTask(in: self.settings.backoffResetAfter) { [weak self] in
            guard let self, generation == self.generation else { return }
            self.stableTask = nil
            if self.machine.streamStayedUp(at: .now()) {
                self.logger.info("upstream connected and stable again")
            }
        }
        self.delegate?.upstreamStateChanged(self.machine.state, failure: nil)
    }

    /// Sets the `Last-Event-ID` of the first connection when nothing has been received yet and no
    /// connection is under way; true when it took.
    func seedLastEventID(_ id: String) -> Bool {
        guard self.lastEventID.isEmpty else { return false }
        switch self.machine.state {
        case .idle, .stopped:
            self.lastEventID = id
            return true
        case .connecting, .streaming, .waiting:
            return false
        }
    }

    /// Sets the `Last-Event-ID` of the next connection while none is under way (the feed let its upstream
    /// go in the middle of a rebase: the next connection resumes after what the ring holds).
    func resume(from id: String) {
        self.loop.preconditionInEventLoop()
        switch self.machine.state {
        case .idle, .stopped:
            self.lastEventID = id
        case .connecting, .streaming, .waiting:
            preconditionFailure("resume(from:) while the upstream is \(self.machine.state)")
        }
    }

    /// Drops the current connection (or backoff) and connects again at once, asking the upstream to
    /// resume from `id`: a client needs events from before where this connection resumed.
    func restart(from id: String) {
        self.loop.preconditionInEventLoop()
        self.run(self.machine.stop())
        self.lastEventID = id
        self.run(self.machine.start())
    }

    func received(_ events: [ServerSentEvent], generation: Int) {
        guard generation == self.generation, !events.isEmpty else { return }
        if let id = events.last(where: { $0.id != nil })?.id {
            self.lastEventID = id
        }
        self.delegate?.upstreamReceived(events)
    }

    func receivedRetry(_ milliseconds: Int, generation: Int) {
        guard generation == self.generation else { return }
        self.machine.upstreamRetry(milliseconds: milliseconds)
    }

    func fail(_ failure: UpstreamFailure, generation: Int) {
        guard generation == self.generation else { return }
        if failure == .eventTooLarge {
            // Resume after the oversized event when its id was read, so that a backend that replays it does
            // not make the gateway drop and reconnect forever; the event is dropped (and counted) either way.
            self.lastEventID = self.parser.lastEventID
        }
        let (action, logChange) = self.machine.failed(failure, jitter: Double.random(in: 0..<1), at: .now())
        if logChange {
            var metadata: Logger.Metadata = ["reason": "\(failure)"]
            if self.machine.isFlapping {
                metadata["flapping"] = "streams end within reset_after; logged again once one stays up"
            }
            if case .noContent = failure {
                self.logger.notice("upstream lost", metadata: metadata)
            } else {
                self.logger.warning("upstream lost", metadata: metadata)
            }
        }
        if case .reconnectAfter(let delay) = action {
            self.logger.debug("upstream reconnecting", metadata: ["in": "\(delay.nanoseconds / 1_000_000)ms"])
        }
        self.run(action)
        self.delegate?.upstreamStateChanged(self.machine.state, failure: failure)
    }
}

/// The handler at the end of an upstream connection's pipeline: sends the request, checks the response,
/// and feeds body bytes to the client's parser, batching the events of one read burst.
final class UpstreamStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let client: UpstreamClient
    private let generation: Int
    private var streaming = false
    private var finished = false
    private var batch: [ServerSentEvent] = []

    init(client: UpstreamClient, generation: Int) {
        self.client = client
        self.generation = generation
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
            self.client.streamStarted(generation: self.generation)
        case .body(var buffer):
            guard self.streaming else { return }
            do {
                try self.client.parser.parse(&buffer) { output in
                    switch output {
                    case .event(let event): self.batch.append(event)
                    case .retry(let milliseconds): self.client.receivedRetry(milliseconds, generation: self.generation)
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
        self.client.received(events, generation: self.generation)
    }

    private func finish(context: ChannelHandlerContext, _ failure: UpstreamFailure) {
        guard !self.finished else { return }
        self.finished = true
        self.client.fail(failure, generation: self.generation)
        context.close(promise: nil)
    }
}

/// Minimal base64 for the `Authorization: Basic` header of a URL with credentials.
enum Base64 {
    static func encode(_ bytes: [UInt8]) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = bytes[index]
            let b1 = index + 1 < bytes.count ? bytes[index + 1] : 0
            let b2 = index + 2 < bytes.count ? bytes[index + 2] : 0
            out.append(table[Int(b0 >> 2)])
            out.append(table[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(index + 1 < bytes.count ? table[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(index + 2 < bytes.count ? table[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
