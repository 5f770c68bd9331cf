import NIOCore
import NIOHTTP1

/// `GET /api/status/stream`: a `text/event-stream` of `StatusJSON` objects, one per interval (1 s by
/// default; `?interval_ms=` between 100 and 60000 for tests and impatient people). One timer per admin
/// connection, cancelled when the connection closes or the admin listener does. A client that does not
/// read gets no backlog: a sample is skipped while the channel is not writable (totals are absolute).
final class AdminStream {
    static let defaultInterval = TimeAmount.seconds(1)
    static let retry = 2000

    private let metrics: GatewayMetrics
    private let interval: TimeAmount
    private let access: AdminAccess
    /// The admin token's generation when this stream was admitted; a different one ends the stream.
    private let admittedGeneration: Int
    private var sampler = StatusSampler()
    private var task: RepeatedTask?
    private(set) var stopped = false

    init(metrics: GatewayMetrics, interval: TimeAmount, access: AdminAccess, admittedGeneration: Int) {
        self.metrics = metrics
        self.interval = interval
        self.access = access
        self.admittedGeneration = admittedGeneration
    }

    /// The interval a request asked for (`interval_ms`), clamped, or the default.
    static func interval(query: Substring) -> TimeAmount {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == "interval_ms", let ms = Int64(parts[1]) {
                return .milliseconds(min(60_000, max(100, ms)))
            }
        }
        return Self.defaultInterval
    }

    static func responseHead(version: HTTPVersion) -> HTTPResponseHead {
        HTTPResponseHead(
            version: version,
            status: .ok,
            headers: HTTPHeaders([
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("Cache-Control", "no-cache, no-transform"),
                ("X-Accel-Buffering", "no"),
                ("Connection", version.major == 1 && version.minor == 0 ? "close" : "keep-alive"),
            ])
        )
    }

    /// Writes the head and `retry:`, then one event per interval until `stop()`.
    func start(context: ChannelHandlerContext, version: HTTPVersion) {
        self.metrics.statusStreams.add(1, ordering: .relaxed)
        context.write(NIOAny(HTTPServerResponsePart.head(Self.responseHead(version: version))), promise: nil)
        context.writeAndFlush(
            NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: "retry: \(Self.retry)\n\n")))),
            promise: nil
        )
        let loop = context.eventLoop
        let bound = NIOLoopBound((stream: self, context: context), eventLoop: loop)
        self.task = loop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: self.interval) { _ in
            let (stream, context) = bound.value
            guard !stream.stopped else { return loop.makeSucceededVoidFuture() }
            // The admin listener closed (shutdown, or a reload moved it): its streams end with it.
            // So does a stream admitted under an admin token that a reload has since replaced or removed:
            // the browser reconnects and must show the new one.
            let listenerClosed = context.channel.parent.map { !$0.isActive } ?? false
            if listenerClosed || stream.access.generation != stream.admittedGeneration {
                stream.stop()
                context.close(promise: nil)
                return loop.makeSucceededVoidFuture()
            }
            return stream.metrics.snapshot(on: loop).map { snapshot in
                let (stream, context) = bound.value
                let sample = stream.sampler.sample(snapshot)
                guard !stream.stopped, context.channel.isWritable else { return }
                let json = StatusJSON.render(snapshot, sample, ready: stream.metrics.ready.load(ordering: .relaxed))
                let event = ByteBuffer(string: "data: \(json)\n\n")
                context.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(event))), promise: nil)
            }.recover { _ in }
        }
    }

    func stop() {
        guard !self.stopped else { return }
        self.stopped = true
        if self.task != nil { self.metrics.statusStreams.subtract(1, ordering: .relaxed) }
        self.task?.cancel()
        self.task = nil
    }
}
