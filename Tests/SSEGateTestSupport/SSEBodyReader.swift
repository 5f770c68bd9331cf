import CompressNIO
import NIOCore
import SSE

/// What a test client does with each piece of a response body, over HTTP/1.1 or HTTP/2 alike: inflate
/// it (a gzip client), keep its text when the test wants the body, and parse the events it completes.
struct SSEBodyReader {
    /// One piece read: its text (empty unless recorded) and the events it completed, or why inflating
    /// failed (recorded in the body, as the tests look for it there).
    enum Piece {
        case read(text: String, events: [ServerSentEvent])
        case inflateFailed(String)
    }

    private var parser = SSEParser()

    mutating func read(_ piece: ByteBuffer, inflater: ZlibDecompressor?, recordBody: Bool) -> Piece {
        var buffer = piece
        if let inflater {
            do {
                buffer = try inflater.inflateAll(&buffer)
            } catch {
                return .inflateFailed("<inflate error: \(error)>")
            }
        }
        let text = recordBody ? String(buffer: buffer) : ""
        var events: [ServerSentEvent] = []
        try? self.parser.parse(&buffer) { output in
            if case .event(let event) = output { events.append(event) }
        }
        return .read(text: text, events: events)
    }
}
