import NIOCore
import NIOHTTP1

/// A response head independent of the HTTP version: HTTP/1 encodes it to bytes once, HTTP/2 turns it
/// into a HEADERS frame.
public struct ResponseHead: Sendable {
    public var status: HTTPResponseStatus
    public var headers: [(String, String)]

    public init(status: HTTPResponseStatus, headers: [(String, String)] = []) {
        self.status = status
        self.headers = headers
    }

    /// The headers every SSE stream carries (SPEC §3), without the HTTP/1-only connection headers.
    static func eventStream() -> ResponseHead {
        ResponseHead(
            status: .ok,
            headers: [
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("Cache-Control", "no-cache, no-transform"),
                ("X-Accel-Buffering", "no"),
            ]
        )
    }

    /// A small plain-text response (errors, preflight).
    static func plain(
        _ status: HTTPResponseStatus,
        _ body: String = "",
        headers: [(String, String)] = []
    ) -> (ResponseHead, String) {
        var all = headers
        if !body.isEmpty {
            all.append(("Content-Type", "text/plain; charset=utf-8"))
        }
        return (ResponseHead(status: status, headers: all), body)
    }

    /// HTTP/1.x bytes of the head, ending with the empty line.
    func encodeHTTP1(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeString(String(self.status.code))
        buffer.writeStaticString(" ")
        buffer.writeString(self.status.reasonPhrase)
        buffer.writeStaticString("\r\n")
        for (name, value) in self.headers {
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
    }
}
