import CompressNIO
import NIOCore

/// The life of one bench client, the same over an HTTP/1.1 connection and an HTTP/2 stream: request sent,
/// response head (200 or not), body bytes (inflated when gzip) into the event scanner, and the close.
/// Keeps the loop's tally true at every step, so progress and the no-response count need no extra state.
struct BenchStreamReceiver {
    private enum Phase { case idle, awaitingHead, streaming, finished }

    private let loop: BenchLoopTally
    private var phase = Phase.idle
    private var scanner = SSEEventScanner()
    private var inflater: ZlibDecompressor?
    /// When the request went out (`BenchClock.nowMicros`), for the time to the response head.
    private var requestSentMicros: Int64 = 0

    init(loop: BenchLoopTally) {
        self.loop = loop
    }

    var isStreaming: Bool { self.phase == .streaming }

    mutating func requestSent() {
        guard self.phase == .idle else { return }
        self.phase = .awaitingHead
        self.requestSentMicros = BenchClock.nowMicros()
        self.loop.tally.awaitingHead += 1
    }

    /// Returns whether the client should go on reading (a 200 stream); the caller closes it otherwise.
    mutating func head(status: Int, gzip: Bool) -> Bool {
        guard self.phase == .awaitingHead else { return self.phase == .streaming }
        self.loop.tally.awaitingHead -= 1
        guard status == 200 else {
            self.phase = .finished
            self.loop.tally.badStatus += 1
            return false
        }
        if gzip {
            do {
                self.inflater = try ZlibDecompressor(algorithm: .gzip)
            } catch {
                self.phase = .finished
                self.loop.tally.protocolErrors += 1
                return false
            }
        }
        self.phase = .streaming
        self.loop.tally.connected += 1
        let now = BenchClock.nowMicros()
        self.loop.tally.opened += 1
        self.loop.tally.lastOpenMicros = max(self.loop.tally.lastOpenMicros, now)
        _ = self.loop.tally.openMicros.record(UInt64(max(0, now - self.requestSentMicros)))
        return true
    }

    /// Counts the bytes and the events in a piece of body. Throws when gzip data is corrupt or an event
    /// outgrows the scanner's limit.
    mutating func body(_ piece: ByteBuffer) throws {
        guard self.phase == .streaming else { return }
        self.loop.tally.bytes += piece.readableBytes
        let now = BenchClock.nowMicros()
        guard let inflater = self.inflater else {
            try self.scan(piece, receivedAt: now)
            return
        }
        var input = piece
        var output = self.loop.scratch
        self.loop.scratch = ByteBuffer()  // keeps `output` uniquely referenced, so inflating writes in place
        defer {
            output.clear()
            self.loop.scratch = output
        }
        var restarted = false
        // zlib may have output left when it filled the scratch buffer, even with all input taken (the rest
        // of a long match): go on until it stops with room to spare, or the piece's tail would wait for
        // the next piece.
        var outputFull = false
        while input.readableBytes > 0 || outputFull {
            let readerIndex = input.readerIndex
            outputFull = false
            do {
                try inflater.inflate(from: &input, to: &output)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                // The scratch buffer is full: scan it and go on.
                outputFull = output.writableBytes == 0
            } catch let error as CompressNIOError where error == .inputBufferOverflow && input.readableBytes == 0 {
                // Asked for more after a full buffer, and there was nothing more.
            }
            let progressed = input.readerIndex != readerIndex || output.readableBytes > 0
            try self.scan(output, receivedAt: now)
            output.clear()
            if progressed {
                restarted = false
                continue
            }
            if input.readableBytes == 0 { break }
            // zlib takes no input after the end of a gzip member: what follows must be the next member
            // (RFC 1952 §2.2). A fresh member that still takes nothing is no gzip: malformed.
            guard !restarted else { throw CompressNIOError.corruptData }
            try inflater.reset()
            restarted = true
        }
    }

    /// A malformed head, chunk framing or gzip data: counted once; the caller closes the client.
    mutating func malformed() {
        switch self.phase {
        case .awaitingHead:
            self.loop.tally.protocolErrors += 1
            self.loop.tally.awaitingHead -= 1
            self.phase = .finished
        case .streaming:
            self.loop.tally.protocolErrors += 1
            self.closed()
        case .idle, .finished:
            break
        }
    }

    /// The connection or stream is gone; `reset` when the server reset an HTTP/2 stream.
    mutating func closed(reset: Bool = false) {
        switch self.phase {
        case .streaming:
            self.loop.tally.connected -= 1
            self.loop.tally.disconnects += 1
            if reset { self.loop.tally.resets += 1 }
        case .awaitingHead:
            self.loop.tally.awaitingHead -= 1
            self.loop.tally.closedBeforeHead += 1
        case .idle, .finished:
            break
        }
        self.phase = .finished
    }

    private mutating func scan(_ buffer: ByteBuffer, receivedAt now: Int64) throws {
        let loop = self.loop
        try buffer.withUnsafeReadableBytes { bytes in
            try self.scanner.scan(bytes) { delivery in
                loop.tally.events += 1
                loop.tally.missing += delivery.missedBefore
                if let sent = delivery.sentMicros {
                    _ = loop.tally.latencyMicros.record(UInt64(max(0, now - sent)))
                }
            }
        }
    }
}
