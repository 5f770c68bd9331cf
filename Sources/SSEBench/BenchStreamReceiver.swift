import CompressNIO
import NIOCore

/// The life of one bench client, the same over an HTTP/1.1 connection and an HTTP/2 stream: request sent,
/// response head (200 or not), body bytes (inflated when gzip) into the event scanner, and the close.
/// Keeps the loop's tally true at every step, so progress and the no-response count need no extra state.
///
/// A poll client (`BenchClientMode.poll`) goes round: each finished response is a poll, after which it
/// asks again on the same connection with the last event id; it counts as connected (and as opened, with
/// the time to its head) from its first 200 head to its close, and as awaiting a head only before that
/// first one, since a poll that waits for events gets no head until they come.
///
/// A reconnecting client (`BenchClientMode.reconnect`) keeps one receiver for its whole life, lent to the
/// handler of each of its connections in turn: the scanner's seq count, last event id and `retry:` carry
/// over, so the gaps and duplicates counted are those across reconnects; an outage runs from the close of
/// a stream to the next event received, through any refused attempts in between.
struct BenchStreamReceiver {
    private enum Phase {
        case idle
        /// The first request is out.
        case awaitingHead
        /// Reading a 200 body: the stream, or the current poll response.
        case streaming
        /// A poll response ended; the next poll is not out yet.
        case betweenPolls
        /// A later poll is out; its head has not come.
        case awaitingPoll
        case finished
    }

    /// What the next poll asks with: sent after `delayMillis`, resuming after `lastEventID`.
    struct NextPoll: Equatable {
        var delayMillis: Int
        /// Nil before any id (the next poll then sends no `Last-Event-ID`).
        var lastEventID: String?
    }

    /// `EventSource`'s usual reconnection time, for a poll response without `retry:`.
    static let defaultRetryMillis = 3000

    private let loop: BenchLoopTally
    private let mode: BenchClientMode
    private var phase = Phase.idle
    private var scanner: SSEEventScanner
    private var feeds: MultiFeedTracker?
    private var inflater: ZlibDecompressor?
    /// When the request went out (`BenchClock.nowMicros`), for the time to the response head.
    private var requestSentMicros: Int64 = 0
    /// The `Last-Event-ID` the current poll asked with (nil: none), for `BenchTally.missingSamples`.
    private var pollAskedAfter: String?
    /// Reconnect mode: when this client's stream closed, while it has had no event since.
    private var outageSinceMicros: Int64?
    /// Reconnect mode: the `Retry-After` of the refusal that ended this attempt, ms.
    private var retryAfterMillis: Int?

    init(loop: BenchLoopTally, mode: BenchClientMode = BenchClientMode()) {
        self.loop = loop
        self.mode = mode
        self.scanner = SSEEventScanner(readsFields: mode.poll || mode.multi || mode.reconnect)
        self.feeds = mode.multi ? MultiFeedTracker() : nil
    }

    var isStreaming: Bool { self.phase == .streaming }

    /// What the next request sends as `Last-Event-ID`: the last event id, when it is not empty.
    var resumeID: String? {
        guard let id = self.scanner.lastEventID, !id.isEmpty else { return nil }
        return id
    }

    mutating func requestSent() {
        switch self.phase {
        case .idle:
            self.phase = .awaitingHead
            self.requestSentMicros = BenchClock.nowMicros()
            self.loop.tally.awaitingHead += 1
        case .betweenPolls:
            self.phase = .awaitingPoll
            self.requestSentMicros = BenchClock.nowMicros()
        case .awaitingHead, .streaming, .awaitingPoll, .finished:
            break
        }
    }

    /// Returns whether the client should go on reading (a 200 response); the caller closes it otherwise.
    /// `retryAfterSeconds`: the head's `Retry-After`, which a reconnecting client waits after a refusal.
    mutating func head(status: Int, gzip: Bool, retryAfterSeconds: Int? = nil) -> Bool {
        switch self.phase {
        case .awaitingHead:
            self.loop.tally.awaitingHead -= 1
            // ssegate answers an EventSource over its connection rate with a 200 that carries only `retry:`
            // (and a `Retry-After`): a refusal too, not a stream that opened.
            let refusedStream = self.mode.reconnect && status == 200 && retryAfterSeconds != nil
            guard status == 200, !refusedStream else {
                self.phase = .finished
                if self.mode.reconnect && (status == 503 || refusedStream) {
                    // A server (or the balancer in front) that sheds load: expected in a storm, not an error.
                    self.loop.tally.refusals += 1
                    self.loop.tally.timeline.record(.refusals, at: BenchClock.nowMicros())
                } else {
                    self.loop.tally.badStatus += 1
                }
                self.retryAfterMillis = retryAfterSeconds.map { $0 * 1000 }
                return false
            }
        case .awaitingPoll:
            guard status == 200 else {
                // A later poll refused (503 over `poll.max_waiting`, a token that expired): the client
                // stops, as `EventSource` does on a non-200.
                self.phase = .finished
                self.loop.tally.badStatus += 1
                self.loop.tally.connected -= 1
                return false
            }
            self.inflater = nil
            guard self.startInflating(gzip) else { return false }
            self.phase = .streaming
            _ = self.loop.tally.pollWaitMicros.record(UInt64(max(0, BenchClock.nowMicros() - self.requestSentMicros)))
            return true
        case .idle, .streaming, .betweenPolls, .finished:
            return self.phase == .streaming
        }
        guard self.startInflating(gzip) else { return false }
        self.phase = .streaming
        self.loop.tally.connected += 1
        let now = BenchClock.nowMicros()
        self.loop.tally.opened += 1
        self.loop.tally.timeline.record(.opens, at: now)
        self.loop.tally.lastOpenMicros = max(self.loop.tally.lastOpenMicros, now)
        _ = self.loop.tally.openMicros.record(UInt64(max(0, now - self.requestSentMicros)))
        return true
    }

    /// A fresh inflater for a gzip response; false (counted, client finished) when zlib will not start.
    private mutating func startInflating(_ gzip: Bool) -> Bool {
        guard gzip else { return true }
        do {
            self.inflater = try ZlibDecompressor(algorithm: .gzip)
            return true
        } catch {
            if self.phase == .awaitingPoll { self.loop.tally.connected -= 1 }
            self.phase = .finished
            self.loop.tally.protocolErrors += 1
            return false
        }
    }

    /// The response body ended. A poll client counts the poll and returns when and how to ask again;
    /// otherwise nil (the caller closes: a stream that ended is a disconnect).
    mutating func responseEnded() -> NextPoll? {
        guard self.mode.poll, self.phase == .streaming else { return nil }
        self.phase = .betweenPolls
        self.inflater = nil
        self.loop.tally.polls += 1
        let id = self.scanner.lastEventID
        let next = NextPoll(
            delayMillis: self.scanner.retryMillis ?? Self.defaultRetryMillis,
            lastEventID: id?.isEmpty == false ? id : nil
        )
        self.pollAskedAfter = next.lastEventID
        return next
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
        case .streaming, .betweenPolls, .awaitingPoll:
            self.loop.tally.protocolErrors += 1
            self.closed()
        case .idle, .finished:
            break
        }
    }

    /// The connection or stream is gone; `reset` when the server reset an HTTP/2 stream.
    mutating func closed(reset: Bool = false) {
        switch self.phase {
        case .streaming, .betweenPolls, .awaitingPoll:
            self.loop.tally.connected -= 1
            self.loop.tally.disconnects += 1
            if reset { self.loop.tally.resets += 1 }
            let now = BenchClock.nowMicros()
            self.loop.tally.timeline.record(.disconnects, at: now)
            if self.mode.reconnect && self.outageSinceMicros == nil {
                self.outageSinceMicros = now
                self.loop.tally.outages += 1
                self.loop.tally.inOutage += 1
                let first = self.loop.tally.firstDisconnectMicros
                self.loop.tally.firstDisconnectMicros = first == 0 ? now : min(first, now)
            }
        case .awaitingHead:
            self.loop.tally.awaitingHead -= 1
            self.loop.tally.closedBeforeHead += 1
        case .idle, .finished:
            break
        }
        self.phase = .finished
    }

    /// Reconnect mode: this attempt is over (the stream closed, the server refused it, or the connect
    /// failed); readies the receiver for the next one and returns how long to wait first, ms: the
    /// refusal's `Retry-After`, else the last `retry:` received, as `EventSource` waits its reconnection
    /// time. An event cut off by the close is dropped, as `EventSource` drops it.
    mutating func nextAttempt() -> Int {
        self.phase = .idle
        self.inflater = nil
        self.scanner.dropUnfinishedEvent()
        defer { self.retryAfterMillis = nil }
        return self.retryAfterMillis ?? self.scanner.retryMillis ?? Self.defaultRetryMillis
    }

    /// Reconnect mode: the first event since the stream was lost ends the client's outage.
    private mutating func recovered(at now: Int64) {
        guard let since = self.outageSinceMicros else { return }
        self.outageSinceMicros = nil
        self.loop.tally.inOutage -= 1
        self.loop.tally.lastRecoveryMicros = max(self.loop.tally.lastRecoveryMicros, now)
        self.loop.tally.longestOutageMicros = max(self.loop.tally.longestOutageMicros, now - since)
    }

    private mutating func scan(_ buffer: ByteBuffer, receivedAt now: Int64) throws {
        let loop = self.loop
        let asked = self.mode.poll ? (self.pollAskedAfter ?? "none") : nil
        // Taken out while scanning (the scanner is part of self), so its arrays stay uniquely referenced.
        var feeds = self.feeds
        self.feeds = nil
        defer { self.feeds = feeds }
        var delivered = false
        defer { if delivered && self.outageSinceMicros != nil { self.recovered(at: now) } }
        try buffer.withUnsafeReadableBytes { bytes in
            try self.scanner.scan(bytes) { delivery in
                delivered = true
                loop.tally.events += 1
                if let sent = delivery.sentMicros {
                    _ = loop.tally.latencyMicros.record(UInt64(max(0, now - sent)))
                }
                guard feeds != nil else {
                    loop.tally.missing += delivery.missedBefore
                    if delivery.missedBefore > 0 {
                        loop.tally.sampleMissing(
                            Self.missingSample(delivery, missed: delivery.missedBefore, askedAfter: asked)
                        )
                    }
                    if delivery.duplicate { loop.tally.duplicates += 1 }
                    return
                }
                switch feeds!.record(id: delivery.id, seq: delivery.seq) {
                case .feed(let index, let step):
                    if loop.tally.feedEvents.count <= index {
                        loop.tally.feedEvents += Array(repeating: 0, count: index + 1 - loop.tally.feedEvents.count)
                    }
                    loop.tally.feedEvents[index] += 1
                    loop.tally.missing += step.missed
                    if step.missed > 0 {
                        loop.tally.sampleMissing(Self.missingSample(delivery, missed: step.missed, askedAfter: asked))
                    }
                    if step.duplicate { loop.tally.duplicates += 1 }
                case .unattributed:
                    loop.tally.unattributed += 1
                }
            }
        }
    }

    /// One line of `BenchTally.missingSamples`.
    /// `askedAfter`: a poll's `Last-Event-ID` ("none" for a poll without one), nil for a stream.
    private static func missingSample(_ delivery: ScannedDelivery, missed: Int, askedAfter: String?) -> String {
        let asked = askedAfter.map { ", poll after Last-Event-ID \($0)" } ?? ""
        return
            "seq \(delivery.seq) (id \(delivery.id ?? "none")) came after seq \(delivery.seq - Int64(missed) - 1)\(asked)"
    }
}
