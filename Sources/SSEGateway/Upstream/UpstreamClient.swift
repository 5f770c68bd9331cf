import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SSE

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
    /// The channel of the current connection, once connected.
    private var channel: Channel?
    private var retryTask: Scheduled<Void>?
    /// Fires `backoff.reset_after` into a stream: the upstream counts as healthy from then on.
    private var stableTask: Scheduled<Void>?
    var parser: SSEParser
    /// Reconnects made, for `/metrics`.
    private(set) var reconnects = 0
    /// A test seam: opens a connection's channel and sets its pipeline up with the given initializer,
    /// instead of a TCP connect to `url` (the upstream handler's tests use an `EmbeddedChannel`).
    var openChannel: ((@escaping @Sendable (Channel) -> EventLoopFuture<Void>) -> EventLoopFuture<Channel>)?

    var state: UpstreamStateMachine.State { self.machine.state }
    /// The id of the last dispatched event (the standard's "last event ID string"), sent as `Last-Event-ID`
    /// on reconnect. Not the parser's id buffer: an `id:` line of an event cut off by a closed stream must
    /// not move the resume point past an event nobody received.
    private(set) var lastEventID = ""

    init(
        loop: EventLoop,
        url: UpstreamURL,
        settings: UpstreamSettings,
        tlsContext: UpstreamTLSContext?,
        logger: Logger
    ) {
        self.loop = loop
        self.url = url
        self.settings = settings
        switch tlsContext?.context {
        case .success(let context): (self.tlsContext, self.tlsError) = (context, nil)
        case .failure(let failure): (self.tlsContext, self.tlsError) = (nil, failure)
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

    /// Carries out what the state machine decided.
    private func run(_ action: UpstreamStateMachine.Action) {
        switch action {
        case .none:
            break
        case .connect(let connection):
            self.connect(connection)
        case .adoptChannel, .closeStaleChannel, .deliver:
            // Answers to inputs that carry their channel or events: handled where those are.
            preconditionFailure("\(action) needs its input's context")
        case .streamStarted(let connection, let stableAfter, let log):
            if let log { self.write(log) }
            self.stableTask?.cancel()
            self.stableTask = self.loop.assumeIsolated().scheduleTask(in: stableAfter) { [weak self] in
                guard let self else { return }
                self.stableTask = nil
                self.run(self.machine.stableTimerFired(connection, at: .now()))
            }
        case .log(let log):
            self.write(log)
        case .reconnect(let delay, let logs):
            logs.forEach(self.write)
            self.closeChannel()
            self.retryTask?.cancel()
            self.retryTask = self.loop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
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

    private func write(_ log: UpstreamStateMachine.Log) {
        self.logger.log(level: log.level, "\(log.message)", metadata: log.metadata.mapValues { .string($0) })
    }

    private func closeChannel() {
        self.stableTask?.cancel()
        self.stableTask = nil
        if let channel = self.channel {
            self.channel = nil
            channel.close(promise: nil)
        }
    }

    private func connect(_ connection: UpstreamStateMachine.ConnectionID) {
        self.parser.reset()
        self.delegate?.upstreamStateChanged(self.machine.state, failure: nil)
        if self.url.isTLS && self.tlsContext == nil {
            self.fail(.error("TLS setup failed: \(self.tlsError.map { "\($0)" } ?? "no context")"), on: connection)
            return
        }
        let tlsContext = self.tlsContext
        let serverName = UpstreamTLS.serverName(for: self.url.host)
        let idleTimeout = self.settings.idleTimeout
        // The bootstrap's group is this loop: the initializer runs here.
        let client = NIOLoopBound(self, eventLoop: self.loop)
        let initialize: @Sendable (Channel) -> EventLoopFuture<Void> = { channel in
            do {
                let sync = channel.pipeline.syncOperations
                if let tlsContext {
                    try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: serverName))
                }
                try sync.addHTTPClientHandlers(leftOverBytesStrategy: .dropBytes)
                try sync.addHandler(IdleStateHandler(readTimeout: idleTimeout))
                try sync.addHandler(UpstreamStreamHandler(client: client.value, connection: connection))
                return channel.eventLoop.makeSucceededVoidFuture()
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }
        let opened =
            self.openChannel?(initialize)
            ?? ClientBootstrap(group: self.loop)
            .connectTimeout(self.settings.connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer(initialize)
            .connect(host: self.url.host, port: self.url.port)
        opened
            .assumeIsolated()
            .whenComplete { [weak self] result in
                guard let self else { return }
                switch result {
                case .success(let channel):
                    switch self.machine.channelConnected(connection) {
                    case .adoptChannel: self.channel = channel
                    case .closeStaleChannel: channel.close(promise: nil)
                    case let action: preconditionFailure("unexpected \(action) for a connected channel")
                    }
                case .failure(let error):
                    self.fail(.connectFailed(Self.describe(connectError: error)), on: connection)
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

    func streamStarted(on connection: UpstreamStateMachine.ConnectionID) {
        let action = self.machine.streamStarted(connection, at: .now())
        guard action != .none else { return }
        self.run(action)
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

    func received(_ events: [ServerSentEvent], on connection: UpstreamStateMachine.ConnectionID) {
        guard !events.isEmpty, case .deliver = self.machine.eventsReceived(connection) else { return }
        if let id = events.last(where: { $0.id != nil })?.id {
            self.lastEventID = id
        }
        self.delegate?.upstreamReceived(events)
    }

    func receivedRetry(_ milliseconds: Int, on connection: UpstreamStateMachine.ConnectionID) {
        self.machine.upstreamRetry(milliseconds: milliseconds, on: connection)
    }

    func fail(_ failure: UpstreamFailure, on connection: UpstreamStateMachine.ConnectionID) {
        let action = self.machine.failed(failure, on: connection, jitter: Double.random(in: 0..<1), at: .now())
        // `.none`: a connection that already ended (a stop or a restart came first).
        guard action != .none else { return }
        if failure == .eventTooLarge {
            // Resume after the oversized event when its id was read, so that a backend that replays it does
            // not make the gateway drop and reconnect forever; the event is dropped (and counted) either way.
            self.lastEventID = self.parser.lastEventID
        }
        self.run(action)
        self.delegate?.upstreamStateChanged(self.machine.state, failure: failure)
    }
}
