import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import SSE

/// A reconnecting SSE client that behaves like a browser's EventSource: when the stream closes or the
/// connection fails it waits the last `retry:` it was given, then reconnects with `Last-Event-ID` set to the
/// id of the last event it received. It records every event id and every connection (which replica served
/// it, from HAProxy's `X-Replica` header), so a test can check that nothing was missed or repeated across
/// fail-overs.
///
/// Unlike a browser it also retries after a non-200 answer (recorded in `failures`), so that a test sees
/// such an answer as a failure instead of a client that silently stopped.
final class ClusterEventSource: @unchecked Sendable {
    struct Connection: CustomStringConvertible {
        /// `Last-Event-ID` sent with this request (nil on the first one).
        var resumeFrom: String?
        var status: UInt?
        /// HAProxy's `X-Replica` response header: the replica that served this stream.
        var replica: String?
        /// Event ids received on this connection, in order.
        var ids: [String] = []
        /// `retry:` values received on this connection, in order.
        var retries: [Int] = []
        var endedBy: String?

        var description: String {
            "[\(self.replica ?? "?") status \(self.status.map(String.init) ?? "-") from \(self.resumeFrom ?? "start"): "
                + "\(self.ids.first ?? "-")…\(self.ids.last ?? "-") (\(self.ids.count)), retries \(self.retries), \(self.endedBy ?? "open")]"
        }
    }

    struct State {
        var connections: [Connection] = []
        /// Every id of every event dispatched, across connections, in order.
        var ids: [String] = []
        /// The EventSource's "last event ID string".
        var lastEventID = ""
        var retryMilliseconds: Int
        /// Connect errors and non-200 answers.
        var failures: [String] = []
        var stopped = false
    }

    let port: Int
    let path: String
    private let group: EventLoopGroup
    private let state: NIOLockedValueBox<State>
    private var channel: Channel?
    private let channelLock = NIOLock()

    init(port: Int, path: String, group: EventLoopGroup, initialRetryMilliseconds: Int = 3000) {
        self.port = port
        self.path = path
        self.group = group
        self.state = NIOLockedValueBox(State(retryMilliseconds: initialRetryMilliseconds))
    }

    var snapshot: State { self.state.withLockedValue { $0 } }
    /// The replica serving the current (last) connection.
    var currentReplica: String? { self.state.withLockedValue { $0.connections.last?.replica } }
    var eventCount: Int { self.state.withLockedValue { $0.ids.count } }

    func start() {
        self.connect()
    }

    /// Stops reconnecting and closes the current connection.
    func stop() async {
        self.state.withLockedValue { $0.stopped = true }
        let channel = self.channelLock.withLock { self.channel }
        try? await channel?.close()
    }

    private func connect() {
        let resumeFrom: String? = self.state.withLockedValue { state in
            guard !state.stopped else { return nil }
            let resume = state.lastEventID.isEmpty ? nil : state.lastEventID
            state.connections.append(Connection(resumeFrom: resume))
            return resume ?? ""
        }
        guard let resumeFrom else { return }
        let index = self.state.withLockedValue { $0.connections.count - 1 }
        let future = ClientBootstrap(group: self.group)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(StreamHandler(source: self, index: index))
                }
            }
            .connect(host: "127.0.0.1", port: self.port)
        future.whenSuccess { channel in
            self.channelLock.withLock { self.channel = channel }
            if self.state.withLockedValue({ $0.stopped }) {
                channel.close(promise: nil)
                return
            }
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: self.path)
            head.headers.add(name: "Host", value: "127.0.0.1:\(self.port)")
            head.headers.add(name: "Accept", value: "text/event-stream")
            head.headers.add(name: "Cache-Control", value: "no-cache")
            if !resumeFrom.isEmpty { head.headers.add(name: "Last-Event-ID", value: resumeFrom) }
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        future.whenFailure { error in
            self.ended(index: index, reason: "connect failed: \(error)", failure: true)
        }
    }

    /// A connection is over (closed, ended, refused): note why and reconnect after `retry`.
    fileprivate func ended(index: Int, reason: String, failure: Bool = false) {
        let delay: Int? = self.state.withLockedValue { state in
            guard state.connections[index].endedBy == nil else { return nil }  // once per connection
            state.connections[index].endedBy = reason
            if failure { state.failures.append(reason) }
            return state.stopped ? nil : state.retryMilliseconds
        }
        guard let delay else { return }
        self.group.next().scheduleTask(in: .milliseconds(Int64(delay))) { self.connect() }
    }

    fileprivate func received(index: Int, head: HTTPResponseHead) -> Bool {
        self.state.withLockedValue { state in
            state.connections[index].status = head.status.code
            state.connections[index].replica = head.headers.first(name: "X-Replica")
            let ok =
                head.status == .ok && head.headers.first(name: "Content-Type")?.hasPrefix("text/event-stream") == true
            if !ok { state.failures.append("HTTP \(head.status.code) from \(state.connections[index].replica ?? "?")") }
            return ok
        }
    }

    fileprivate func received(index: Int, outputs: [SSEParser.Output]) {
        self.state.withLockedValue { state in
            for output in outputs {
                switch output {
                case .retry(let milliseconds):
                    state.retryMilliseconds = milliseconds
                    state.connections[index].retries.append(milliseconds)
                case .event(let event):
                    // The standard sets the last event ID at dispatch, id-only blocks included.
                    if let id = event.id { state.lastEventID = id }
                    if event.data != nil, let id = event.id {
                        state.ids.append(id)
                        state.connections[index].ids.append(id)
                    }
                }
            }
        }
    }

    private final class StreamHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        let source: ClusterEventSource
        let index: Int
        var parser = SSEParser()
        var streaming = false

        init(source: ClusterEventSource, index: Int) {
            self.source = source
            self.index = index
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.streaming = self.source.received(index: self.index, head: head)
            case .body(var buffer):
                guard self.streaming else { return }
                var outputs: [SSEParser.Output] = []
                do {
                    try self.parser.parse(&buffer) { outputs.append($0) }
                } catch {
                    self.source.ended(index: self.index, reason: "parse error \(error)", failure: true)
                    context.close(promise: nil)
                }
                self.source.received(index: self.index, outputs: outputs)
            case .end:
                // The response ended (a drain ends it cleanly; HAProxy may keep the connection): an
                // EventSource reconnects. Close this connection and open a new one.
                self.source.ended(index: self.index, reason: "response ended")
                context.close(promise: nil)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.source.ended(index: self.index, reason: "connection closed")
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            self.source.ended(index: self.index, reason: "error \(error)")
            context.close(promise: nil)
        }
    }
}
