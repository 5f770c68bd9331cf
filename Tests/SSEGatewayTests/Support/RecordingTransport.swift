import NIOCore

@testable import SSEGateway

/// A `StreamTransport` that records what it is asked to do, in place of a connection: the fake transport
/// of the session, shard and gzip tests. `isWritable` is the test's to set (then tell the session).
final class RecordingTransport: StreamTransport {
    let framing: StreamFraming
    var isWritable = true
    /// Every byte written, in order (the first buffer as handed on: its capacity is what a channel holds).
    var written = ByteBuffer()
    var heads: [ResponseHead] = []
    var responses: [(head: ResponseHead, body: String)] = []
    var flushes = 0
    var finished = false
    var aborted = false
    var held: NIODeadline?
    /// When set, the transport turns unwritable once this many bytes are written, as a channel does at its
    /// high watermark, and calls `onWritabilityChange` (a session's `writabilityChanged`) at once.
    var highWatermark: Int?
    var onWritabilityChange: () -> Void = {}

    init(framing: StreamFraming = .raw) {
        self.framing = framing
    }

    /// What was written, as text.
    var text: String { String(buffer: self.written) }

    func heldSince() -> NIODeadline? { self.held }
    var bytesWritten: Int { self.written.readableBytes }
    func writeHead(_ head: ResponseHead) { self.heads.append(head) }
    func writeShared(_ bytes: ByteBuffer) { self.write(bytes) }
    /// Bare bytes framed as the transport's `framing` says (a connection frames its prelude itself).
    func writePayload(_ bytes: ByteBuffer) { self.write(self.framing.frame(bytes, allocator: ByteBufferAllocator())) }

    private func write(_ bytes: ByteBuffer) {
        if self.written.readableBytes == 0 {
            self.written = bytes
        } else {
            self.written.writeImmutableBuffer(bytes)
        }
        if let highWatermark = self.highWatermark, self.isWritable, self.written.readableBytes >= highWatermark {
            self.isWritable = false
            self.onWritabilityChange()
        }
    }

    func flush() { self.flushes += 1 }
    func abort() { self.aborted = true }
    func finish() { self.finished = true }
    func respond(_ head: ResponseHead, body: String) { self.responses.append((head, body)) }
}
