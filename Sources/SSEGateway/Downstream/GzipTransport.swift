import CompressNIO
import Foundation
import NIOCore

/// A transport that gzips a client's stream in front of another transport. Each client has its own
/// deflate stream (compression has state, so the shared, encode-once buffers are compressed per client);
/// after each batch the transport's `flush` does a zlib sync flush, so every event can be decoded the
/// moment it arrives. The small window and memory level keep a compressed client near 40 KiB.
final class GzipTransport: StreamTransport {
    /// deflate's window is 1 << (bits + 2) bytes; its hash tables 1 << (level + 9) bytes.
    static let configuration = ZlibConfiguration(windowSize: 12, compressionLevel: 6, memoryLevel: 5)

    private let inner: StreamTransport
    private let compressor: ZlibCompressor
    private var pending: ByteBuffer
    private var hasInput = false

    init(wrapping inner: StreamTransport) throws {
        self.inner = inner
        self.compressor = try ZlibCompressor(algorithm: .gzip, configuration: Self.configuration)
        self.pending = ByteBufferAllocator().buffer(capacity: 0)
    }

    /// True when `Accept-Encoding` allows gzip (RFC 9110 §12.5.3: `gzip`, `x-gzip` or `*`, with q > 0).
    static func accepts(_ acceptEncoding: [String]) -> Bool {
        var gzip: Double?
        var wildcard: Double?
        for field in acceptEncoding {
            for item in field.split(separator: ",") {
                let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
                guard let coding = parts.first?.lowercased() else { continue }
                var quality = 1.0
                for parameter in parts.dropFirst() where parameter.lowercased().hasPrefix("q=") {
                    quality = Double(parameter.dropFirst(2)) ?? 0
                }
                switch coding {
                case "gzip", "x-gzip": gzip = max(gzip ?? 0, quality)
                case "*": wildcard = quality
                default: break
                }
            }
        }
        return (gzip ?? wildcard ?? 0) > 0
    }

    var framing: StreamFraming { .raw }
    var isWritable: Bool { self.inner.isWritable }
    var bytesWritten: Int { self.inner.bytesWritten }
    func heldSince() -> NIODeadline? { self.inner.heldSince() }

    func writeHead(_ head: ResponseHead) {
        var head = head
        head.headers.append(("Content-Encoding", "gzip"))
        self.inner.writeHead(head)
    }

    func writeShared(_ bytes: ByteBuffer) {
        self.deflate(bytes, flush: .no)
        self.hasInput = true
    }

    func writePayload(_ bytes: ByteBuffer) {
        self.writeShared(bytes)
    }

    func flush() {
        if self.hasInput {
            self.hasInput = false
            self.deflate(ByteBuffer(), flush: .sync)
            self.handOn()
        }
        self.inner.flush()
    }

    func abort() {
        self.inner.abort()
    }

    func finish() {
        self.deflate(ByteBuffer(), flush: .finish)
        self.handOn()
        self.inner.finish()
    }

    func respond(_ head: ResponseHead, body: String) {
        self.inner.respond(head, body: body)
    }

    /// Feeds `bytes` to zlib and collects everything it produces into `pending`. zlib stops when its output
    /// space runs out (returning Z_OK with `avail_out == 0`) and expects to be called again with the same
    /// flush mode; a sync flush of a large batch produces far more than `deflateBound` of its (empty) input.
    /// So the loop goes on, growing `pending`, until all input is taken and zlib left output space unused:
    /// only then has it emitted every byte of the flush.
    private func deflate(_ bytes: ByteBuffer, flush: CompressNIOFlush) {
        var input = bytes
        // Sized for the common case (a short flush): the buffer is handed on with the bytes and held by the
        // channel until they are sent, so its spare capacity costs memory per flush. Large flushes grow it.
        var reserve = self.compressor.maxSize(from: input) + 16
        while true {
            if self.pending.writableBytes < reserve {
                self.pending.reserveCapacity(minimumWritableBytes: reserve)
            }
            do {
                try self.compressor.deflate(from: &input, to: &self.pending, flush: flush)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                // compress-nio reports zlib's Z_OK for `.finish` and Z_BUF_ERROR ("no progress possible") as
                // an overflow: the check below tells done (output space left) from full (grow and go on).
            } catch {
                // A deflate failure can only be a bug or memory exhaustion: end this client, not the gateway.
                self.inner.abort()
                return
            }
            if input.readableBytes == 0 && self.pending.writableBytes > 0 { return }
            reserve = max(self.pending.capacity, Self.minimumGrowth)
        }
    }

    /// The least the output space grows by when zlib filled it.
    static let minimumGrowth = 1024

    private func handOn() {
        guard self.pending.readableBytes > 0 else { return }
        self.inner.writePayload(self.pending)
        self.pending = ByteBufferAllocator().buffer(capacity: 0)
    }
}
