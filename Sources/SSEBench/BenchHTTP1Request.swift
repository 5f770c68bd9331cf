import NIOCore

/// The HTTP/1.1 request a bench client sends, prepared once per run: the request line and headers up to
/// the blank line; a poll adds its `Last-Event-ID`.
struct BenchHTTP1Request: Sendable {
    /// Request line and header lines, without the blank line that ends the head.
    let head: ByteBuffer

    init(head: String) {
        self.head = ByteBuffer(string: head)
    }

    func bytes(lastEventID: String?) -> ByteBuffer {
        var request = self.head
        if let lastEventID {
            request.writeString("Last-Event-ID: \(lastEventID)\r\n")
        }
        request.writeString("\r\n")
        return request
    }
}
