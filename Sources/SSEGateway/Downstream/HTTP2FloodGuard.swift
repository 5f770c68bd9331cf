import NIOCore

/// The first handler of an HTTP/2 connection after TLS (before `NIOHTTP2Handler`): reads only the 9-byte
/// frame headers of both directions (`HTTP2FrameHeaderScanner`) and enforces `HTTP2ConnectionBudget` —
/// no-progress frames (WINDOW_UPDATE floods) per connection, premature stream ends per listener
/// (`ListenerResetBudget`): a premature reset is charged when it is read, the unanswered streams of a
/// connection when it closes, and while the listener's budget for the second is spent a new stream is
/// refused like a premature reset over it. When a budget is exceeded, the read that crossed it never
/// reaches the HTTP/2 handler: at the end of that read pass the client gets GOAWAY (ENHANCE_YOUR_CALM)
/// naming the last stream the gateway processed and the connection closes; whatever else it sends is
/// dropped unparsed.
final class HTTP2FloodGuard: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// Why a connection was closed, for `/metrics`.
    enum Reason: String, CaseIterable, Sendable {
        case noProgressFrames = "no_progress_frames"
        case prematureResets = "premature_resets"
    }

    private let listener: ListenerResetBudget
    private let prematureResetsPerSecond: Int
    private let closed: (Reason) -> Void
    private var inbound = HTTP2FrameHeaderScanner(afterClientPreface: true)
    private var outbound = HTTP2FrameHeaderScanner(afterClientPreface: false)
    private var budget = HTTP2ConnectionBudget()
    /// The highest client stream id in the reads handed to the HTTP/2 handler (GOAWAY's last stream id).
    private var forwardedLastStreamID: UInt32 = 0
    /// Set when a budget was exceeded: reads are dropped from then on, and the read pass ends in GOAWAY.
    private var tripped: Reason?
    private var closing = false

    /// `closed` is called once when the guard closes the connection.
    init(listener: ListenerResetBudget, prematureResetsPerSecond: Int, closed: @escaping (Reason) -> Void = { _ in }) {
        self.listener = listener
        self.prematureResetsPerSecond = prematureResetsPerSecond
        self.closed = closed
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.tripped == nil else { return }
        let now = NIODeadline.now()
        var exceeded: Reason?
        self.inbound.scan(self.unwrapInboundIn(data)) { header in
            let lastStreamID = self.budget.lastStreamID
            switch self.budget.received(header, now: now) {
            case .proceed:
                // A new stream while the listener's budget is spent: streams abandoned by closing their
                // connections are charged only at the close, so only refusing the next ones bounds them.
                let opensStream = self.budget.lastStreamID != lastStreamID
                if !opensStream || !self.listener.isSpent(limit: self.prematureResetsPerSecond, now: now) {
                    return true
                }
                exceeded = .prematureResets
            case .prematureReset:
                if self.listener.allow(limit: self.prematureResetsPerSecond, now: now) { return true }
                exceeded = .prematureResets
            case .tooManyNoProgressFrames:
                exceeded = .noProgressFrames
            }
            return false
        }
        if let exceeded {
            // The close waits for this read's end (`channelReadComplete`): SwiftNIO's HTTP/2 multiplexer
            // clears its list of streams that read in this pass only there, and a connection closed
            // before that kept the list, its streams and the multiplexer alive.
            self.tripped = exceeded
            return
        }
        self.forwardedLastStreamID = self.budget.lastStreamID
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Streams the HTTP/2 handler was given and the gateway had not answered end with the connection.
        let ended = self.budget.prematureEndsAtClose(through: self.forwardedLastStreamID, now: .now())
        self.listener.charge(ended)
        context.fireChannelInactive()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
        if let reason = self.tripped, !self.closing {
            self.closing = true
            self.goAwayAndClose(context: context, reason)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .byteBuffer(let bytes) = self.unwrapOutboundIn(data) {
            self.outbound.scan(bytes) { header in
                self.budget.sent(header)
                return true
            }
        }
        context.write(data, promise: promise)
    }

    /// GOAWAY straight to the socket (the HTTP/2 handler never saw this read, so its state does not
    /// matter any more), then close.
    private func goAwayAndClose(context: ChannelHandlerContext, _ reason: Reason) {
        var goAway = context.channel.allocator.buffer(capacity: 17)
        goAway.writeInteger(UInt8(0))
        goAway.writeInteger(UInt16(8))  // payload length
        goAway.writeInteger(HTTP2FrameHeaderScanner.FrameType.goAway)
        goAway.writeInteger(UInt8(0))  // flags
        goAway.writeInteger(UInt32(0))  // stream 0
        goAway.writeInteger(self.forwardedLastStreamID)
        goAway.writeInteger(UInt32(0xB))  // ENHANCE_YOUR_CALM
        context.writeAndFlush(self.wrapOutboundOut(.byteBuffer(goAway)), promise: nil)
        context.close(promise: nil)
        self.closed(reason)
    }
}
