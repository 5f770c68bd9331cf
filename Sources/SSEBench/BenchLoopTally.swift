import NIOCore

/// One event loop's tally, shared by the clients on that loop: a class so the handlers update it in place,
/// Sendable because only its own loop touches it (the runner reads it with `loop.submit`).
final class BenchLoopTally: @unchecked Sendable {
    var tally = BenchTally()
    /// Where the gzip clients of this loop inflate into, one at a time.
    var scratch = ByteBufferAllocator().buffer(capacity: 64 * 1024)
}
