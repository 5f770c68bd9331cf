import NIOCore

/// One event loop's tally, shared by the clients on that loop: a class so the handlers update it in place,
/// `@unchecked Sendable`: `tally` and `scratch` are read and written only on the loop the tally belongs to
/// (its handlers run there; the runner reads it with `loop.submit`).
final class BenchLoopTally: @unchecked Sendable {
    var tally = BenchTally()
    /// Where the gzip clients of this loop inflate into, one at a time.
    var scratch = ByteBufferAllocator().buffer(capacity: 64 * 1024)

    /// `originMicros`: the start of the run, bucket 0 of every loop's timeline.
    init(originMicros: Int64 = 0) {
        self.tally.timeline = BenchTimeline(originMicros: originMicros)
    }
}
