import NIOCore
import ProxyProtocol

/// The whole pipeline of a cleartext connection over `limits.new_connections_per_second`: it waits for
/// the first bytes of the request, answers a canned `503` with a jittered `Retry-After` (1-2 s, the
/// bucket refills within a second) and closes. Nothing is routed.
///
/// A request that says `Accept: text/event-stream` (every browser `EventSource` does) gets a `200
/// text/event-stream` instead, carrying only `retry:` with the same 1-2 s: `EventSource` stops for good
/// on a `503` (readyState CLOSED), but reconnects after a stream that ends, so the browsers of a crashed
/// replica come back, spread, instead of being lost in the storm. Its `Origin` is echoed so that a
/// cross-origin `EventSource` reads the `retry:` (the body holds nothing else).
///
/// It answers after the first read, not at once: closing a socket with unread bytes makes Linux send a
/// reset, which can destroy the response before the client read it. An h2c client (its preface starts
/// with `PRI `) cannot read an HTTP/1.1 answer and is just closed; a client that sends nothing is closed
/// after `timeout`.
final class ConnectionRefusalResponder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var answered = false
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount = .seconds(1)) {
        self.timeout = timeout
    }

    static func response(retryAfter: String = RequestRouter.jitteredRetryAfter(.seconds(1))) -> String {
        let body = "too many new connections\n"
        return "HTTP/1.1 503 Service Unavailable\r\nRetry-After: \(retryAfter)\r\nContent-Type: text/plain\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
    }

    /// The answer to an `EventSource`: the stream ends at once, to be reopened after `retry`.
    static func eventStreamResponse(
        origin: String?,
        retry: TimeAmount = DrainPlan<DrainingClient>.jitteredRetry(.seconds(1))
    ) -> String {
        let body = "retry: \(retry.nanoseconds / 1_000_000)\n\n"
        // `Retry-After` too (whole seconds, rounded up): an EventSource ignores it, a load tool or a
        // proxy's log can tell this refusal from a stream that ended.
        let seconds = (retry.nanoseconds + 999_999_999) / 1_000_000_000
        var head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        head += "Cache-Control: no-cache, no-transform\r\nRetry-After: \(seconds)\r\n"
        if let origin {
            head +=
                "Access-Control-Allow-Origin: \(origin)\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n"
        }
        return head + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
    }

    /// Whether the head's first bytes accept `text/event-stream`, and its `Origin` (a value of visible
    /// ASCII only, else none). Reads header lines up to the blank line or the end of what arrived.
    /// A PROXY protocol header in front (a `proxy_protocol` listener's connections from a balancer) is
    /// skipped (`ProxyHeaderParser` says how long it is).
    static func eventSourceRequest(_ bytes: ByteBuffer) -> (acceptsEventStream: Bool, origin: String?) {
        var accepts = false
        var origin: String?
        var bytes = bytes
        if case .parsed(let header) = ProxyHeaderParser.parse(bytes) {
            bytes.moveReaderIndex(forwardBy: header.length)
        }
        let lines = bytes.readableBytesView.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for line in lines.dropFirst() {
            let text = String(decoding: line, as: UTF8.self).trimmingSuffix("\r")
            if text.isEmpty { break }
            guard let colon = text.firstIndex(of: ":") else { continue }
            let name = text[..<colon].lowercased()
            let value = text[text.index(after: colon)...].trimmingCharacters(in: " \t")
            if name == "accept", value.lowercased().contains("text/event-stream") {
                accepts = true
            } else if name == "origin", !value.isEmpty, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
                origin = String(value)
            }
        }
        return (accepts, origin)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        self.timer = context.eventLoop.scheduleTask(in: self.timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.answered else { return }
        self.answered = true
        let bytes = self.unwrapInboundIn(data)
        guard bytes.readableBytesView.starts(with: "PRI ".utf8) == false else {
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        let request = Self.eventSourceRequest(bytes)
        let response =
            request.acceptsEventStream ? Self.eventStreamResponse(origin: request.origin) : Self.response()
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: response))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

extension String {
    /// Without one trailing `suffix` character, if it ends with it.
    fileprivate func trimmingSuffix(_ suffix: Character) -> Substring {
        self.last == suffix ? self.dropLast() : Substring(self)
    }
}

extension Substring {
    /// Without leading and trailing characters of `set`.
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var text = self
        while let first = text.first, set.contains(first) { text = text.dropFirst() }
        while let last = text.last, set.contains(last) { text = text.dropLast() }
        return text
    }
}
