import NIOCore

/// Sits before the HTTP/1 request decoder and cuts off a client whose request head grows beyond
/// `limit` bytes (`431`, then close). Only head bytes count: the limiter stops counting at the empty
/// line that ends a head (so a request body or a pipelined request in the same read is not mistaken
/// for header bytes). The stream handler turns counting off once a head is complete and on again when
/// it waits for the next request.
final class HeadSizeLimiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limit: Int
    private var counted = 0
    private var counting = true
    private var tripped = false
    /// End-of-head scanner: 0 inside a line, 1 just after LF, 2 after LF CR.
    private var scan: UInt8 = 0
    /// Set at the first byte that is not CR or LF: empty lines before a request line are not a head's end.
    private var sawContent = false

    /// Where the 431 is logged (nil: not logged), and whether the connection is TLS, for its line.
    private let accessLog: AccessLog?
    private let tls: Bool

    init(limit: Int, accessLog: AccessLog? = nil, tls: Bool = false) {
        self.limit = limit
        self.accessLog = accessLog
        self.tls = tls
    }

    func headReceived() {
        self.counting = false
        self.resetCount()
    }

    func expectHead() {
        self.counting = true
        self.resetCount()
    }

    private func resetCount() {
        self.counted = 0
        self.scan = 0
        self.sawContent = false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.tripped else { return }
        if self.counting {
            let buffer = self.unwrapInboundIn(data)
            let headBytes = self.headBytes(in: buffer)
            self.counted += headBytes.count
            if self.counted > self.limit {
                self.tripped = true
                if let log = self.accessLog, log.isEnabled {
                    log.write(
                        AccessLogRecord.unparsed(
                            status: 431,
                            client: context.channel.remoteAddress?.ipAddress,
                            httpVersion: "HTTP/1.1",
                            tls: self.tls
                        )
                    )
                }
                var response = context.channel.allocator.buffer(capacity: 128)
                ResponseHead(
                    status: .init(statusCode: 431, reasonPhrase: "Request Header Fields Too Large"),
                    headers: [
                        ("Content-Length", "0"), ("Connection", "close"),
                    ]
                ).encodeHTTP1(into: &response)
                let bound = context.loopBound
                context.writeAndFlush(self.wrapOutboundOut(response)).whenComplete { _ in
                    bound.value.close(promise: nil)
                }
                return
            }
            if headBytes.complete {
                // The rest of this read is a body or the next request: the handler turns counting on
                // again (`expectHead`) when it waits for another head.
                self.counting = false
                self.resetCount()
            }
        }
        context.fireChannelRead(data)
    }

    /// How many bytes of `buffer` belong to the head being received, and whether the head ends in it.
    private func headBytes(in buffer: ByteBuffer) -> (count: Int, complete: Bool) {
        let lf = UInt8(ascii: "\n")
        let cr = UInt8(ascii: "\r")
        var index = 0
        for byte in buffer.readableBytesView {
            index += 1
            if !self.sawContent {
                if byte != cr && byte != lf { self.sawContent = true }
                continue
            }
            if byte == lf {
                if self.scan != 0 { return (index, true) }
                self.scan = 1
            } else if byte == cr {
                self.scan = self.scan == 1 ? 2 : 0
            } else {
                self.scan = 0
            }
        }
        return (index, false)
    }
}
