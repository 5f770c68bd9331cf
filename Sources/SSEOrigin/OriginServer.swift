import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SSE

/// The built-in SSE origin (`ssegate origin`): a ticker that sends `id: N` events whose data carries the
/// send time, on any path, to any number of clients, with `Last-Event-ID` resume from a history ring.
/// Tests and the demo also drive it by hand (`publish`) and make it misbehave (`behaviour`).
/// Callable from any thread: what changes is behind two locks (`state` for streams, history and behaviour;
/// `running` for the listener and its timers), and the ticker's pacing lives on the listener's loop.
public final class OriginServer: Sendable {
    /// How the origin answers new requests (for tests of upstream failure handling).
    public enum Behaviour: Sendable, Equatable {
        case stream
        case status(Int)
        case wrongContentType
        /// Accept and send headers, then nothing at all (not even keepalives).
        case silent
        /// Accept, send a body, and end the response: a flapping backend. The n-th request after the
        /// behaviour was set gets `bodies[n]`, the last one from then on.
        case streamThenEnd(bodies: [String])
    }

    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port = 0
        /// Events per second from the ticker; 0 turns it off (`publish` only).
        public var rate: Double = 0
        /// Bytes of padding in each ticker event's data.
        public var payload = 0
        /// Events kept for `Last-Event-ID` resume.
        public var history = 10_000
        /// Comment sent to idle connections this often; nil for none.
        public var keepalive: TimeAmount? = nil
        /// Serve HTTPS with this context (tests of https upstreams).
        public var tls: NIOSSLContext? = nil
        public init() {}
    }

    private struct State {
        var nextID = 1
        /// `id` numbers every event; `eventID` is the id it was sent with (resume matches it first).
        var history: [(id: Int, eventID: String?, bytes: ByteBuffer)] = []
        var connections: [ObjectIdentifier: Channel] = [:]
        var behaviour = Behaviour.stream
        var behaviourForPath: (@Sendable (String) -> Behaviour?)?
        var responseDelay: TimeAmount?
        var requests: [HTTPRequestHead] = []
        var totalConnections = 0
        /// Requests answered since `behaviour` was last set (picks the body of `streamThenEnd`).
        var answeredInBehaviour = 0
    }

    /// What `start()` made and `stop()` ends.
    private struct Running {
        var channel: Channel?
        var ticker: RepeatedTask?
        var keepalive: RepeatedTask?
    }

    public let options: Options
    public let group: EventLoopGroup
    private let ownsGroup: Bool
    private let state = NIOLockedValueBox(State())
    private let running = NIOLockedValueBox(Running())

    public init(options: Options, group: EventLoopGroup? = nil) {
        self.options = options
        self.ownsGroup = group == nil
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    public var port: Int { self.running.withLockedValue { $0.channel?.localAddress?.port } ?? self.options.port }

    public var behaviour: Behaviour {
        get { self.state.withLockedValue { $0.behaviour } }
        set {
            self.state.withLockedValue {
                $0.behaviour = newValue
                $0.answeredInBehaviour = 0
            }
        }
    }

    /// How the origin answers a request for a given path (nil: `behaviour`), e.g. 404 for rooms that
    /// do not exist.
    public var behaviourForPath: (@Sendable (String) -> Behaviour?)? {
        get { self.state.withLockedValue { $0.behaviourForPath } }
        set { self.state.withLockedValue { $0.behaviourForPath = newValue } }
    }

    /// Each request is answered this much later (a slow backend: tests of what happens meanwhile).
    public var responseDelay: TimeAmount? {
        get { self.state.withLockedValue { $0.responseDelay } }
        set { self.state.withLockedValue { $0.responseDelay = newValue } }
    }

    /// Every request head received, oldest first.
    public var requests: [HTTPRequestHead] { self.state.withLockedValue { $0.requests } }
    /// Streams open now.
    public var openConnections: Int { self.state.withLockedValue { $0.connections.count } }
    /// Streams ever opened.
    public var totalConnections: Int { self.state.withLockedValue { $0.totalConnections } }

    public func start() async throws {
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [tls = self.options.tls] channel in
                do {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(OriginHandler(origin: self))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: self.options.host, port: self.options.port)
            .get()
        let loop = channel.eventLoop
        var ticker: RepeatedTask?
        if self.options.rate > 0 {
            let interval = max(0.001, min(1.0 / self.options.rate, 0.05))
            // Only the listener's loop runs the ticker, so the pacer lives there.
            let pacer = NIOLoopBoundBox.makeBoxSendingValue(
                OriginTickPacer(rate: self.options.rate, start: .now()),
                eventLoop: loop
            )
            ticker = loop.scheduleRepeatedTask(
                initialDelay: .nanoseconds(Int64(interval * 1e9)),
                delay: .nanoseconds(Int64(interval * 1e9))
            ) { _ in
                let count = pacer.value.due(at: .now())
                if count > 0 { self.publishTicks(count) }
            }
        }
        let keepalive = self.options.keepalive.map { keepalive in
            loop.scheduleRepeatedTask(initialDelay: keepalive, delay: keepalive) { _ in
                self.broadcast(ByteBuffer(string: ": ping\n\n"))
            }
        }
        self.running.withLockedValue { $0 = Running(channel: channel, ticker: ticker, keepalive: keepalive) }
    }

    public func stop() async throws {
        let running = self.running.withLockedValue { $0 }
        running.ticker?.cancel()
        running.keepalive?.cancel()
        try? await running.channel?.close()
        self.closeStreams()
        if self.ownsGroup { try await self.group.shutdownGracefully() }
    }

    /// Closes every open stream (an upstream "restart" as the gateway sees it); history is kept.
    public func closeStreams() {
        let channels = self.state.withLockedValue { state -> [Channel] in
            let all = Array(state.connections.values)
            state.connections.removeAll()
            return all
        }
        for channel in channels { channel.close(promise: nil) }
    }

    /// Sends one event to every stream; the origin assigns the id when `id` is nil and `assignID` is true.
    @discardableResult
    public func publish(data: String?, type: String? = nil, id: String? = nil, assignID: Bool = true) -> String? {
        var event = ServerSentEvent(id: id, type: type, data: data)
        let (bytes, channels, assigned) = self.state.withLockedValue { state -> (ByteBuffer, [Channel], String?) in
            let number = state.nextID
            state.nextID += 1
            if event.id == nil && assignID { event.id = String(number) }
            var buffer = ByteBuffer()
            SSESerializer.write(event, into: &buffer)
            state.history.append((number, event.id, buffer))
            if state.history.count > self.options.history {
                state.history.removeFirst(state.history.count - self.options.history)
            }
            return (buffer, Array(state.connections.values), event.id)
        }
        for channel in channels {
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(bytes)), promise: nil)
        }
        return assigned
    }

    /// Sends raw bytes to every stream (for malformed or tricky upstream input in tests).
    public func broadcast(_ bytes: ByteBuffer) {
        let channels = self.state.withLockedValue { Array($0.connections.values) }
        for channel in channels {
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(bytes)), promise: nil)
        }
    }

    private func publishTicks(_ count: Int) {
        let padding = String(repeating: "x", count: self.options.payload)
        var combined = ByteBuffer()
        let channels = self.state.withLockedValue { state -> [Channel] in
            for _ in 0..<count {
                let number = state.nextID
                state.nextID += 1
                let micros = Int64(Date().timeIntervalSince1970 * 1_000_000)
                let data = "{\"seq\":\(number),\"ts\":\(micros),\"pad\":\"\(padding)\"}"
                var buffer = ByteBuffer()
                SSESerializer.write(ServerSentEvent(id: String(number), type: nil, data: data), into: &buffer)
                combined.writeImmutableBuffer(buffer)
                state.history.append((number, String(number), buffer))
            }
            if state.history.count > self.options.history {
                state.history.removeFirst(state.history.count - self.options.history)
            }
            return Array(state.connections.values)
        }
        for channel in channels {
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(combined)), promise: nil)
        }
    }

    // MARK: Handler callbacks

    func accept(_ head: HTTPRequestHead, channel: Channel) -> (Behaviour, [ByteBuffer]) {
        self.state.withLockedValue { state in
            state.requests.append(head)
            let path = String(head.uri.prefix { $0 != "?" })
            let behaviour = state.behaviourForPath?(path) ?? state.behaviour
            if case .streamThenEnd(let bodies) = behaviour {
                let body = bodies.isEmpty ? "" : bodies[min(state.answeredInBehaviour, bodies.count - 1)]
                state.answeredInBehaviour += 1
                return (behaviour, [ByteBuffer(string: body)])
            }
            guard behaviour == .stream || behaviour == .silent else { return (behaviour, []) }
            state.totalConnections += 1
            if behaviour == .silent { return (.silent, []) }
            state.connections[ObjectIdentifier(channel)] = channel
            var replay: [ByteBuffer] = []
            if let lastID = head.headers.first(name: "Last-Event-ID") {
                if let index = state.history.lastIndex(where: { $0.eventID == lastID }) {
                    replay = state.history[(index + 1)...].map { $0.bytes }
                } else if let last = Int(lastID) {
                    replay = state.history.filter { $0.id > last }.map { $0.bytes }
                }
            }
            return (.stream, replay)
        }
    }

    func remove(_ channel: Channel) {
        self.state.withLockedValue { _ = $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}
