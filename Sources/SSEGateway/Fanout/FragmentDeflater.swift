import CZlib
import NIOCore

/// Raw deflate (RFC 1951) in pieces that stand alone: each `fragment` starts from a reset state and ends
/// with a sync flush, so its output refers to no byte before it and ends on a byte boundary. Such
/// fragments concatenate, in any order and any selection, into one valid deflate stream: every gzip
/// client can be sent the same fragment of a batch (`GzipFragment`), and decode all of it on arrival.
///
/// One per event loop (`LoopHub.deflater`), used synchronously by whatever on that loop compresses: a
/// compressed client holds no deflate state of its own. Not thread-safe: touched only on its loop.
final class FragmentDeflater {
    /// Level 6, zlib's default; a 32 KiB window (whole bursts compress well) and the default memory level.
    /// About 260 KiB per event loop, not per client.
    static let level: Int32 = 6
    static let windowBits: Int32 = 15
    static let memoryLevel: Int32 = 8

    /// Heap-allocated: zlib's state points back at its `z_stream` and checks that it did not move.
    private let stream: UnsafeMutablePointer<z_stream>

    init() {
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        // Negative window bits: raw deflate, no zlib or gzip wrapper (`GzipMember` writes the gzip one).
        let result = CZlib_deflateInit2(self.stream, Self.level, -Self.windowBits, Self.memoryLevel)
        // zlib fails here only for bad parameters (a bug) or when out of memory.
        precondition(result == Z_OK, "deflateInit2 failed: \(result)")
    }

    deinit {
        _ = CZlib_deflateEnd(self.stream)
        self.stream.deinitialize(count: 1)
        self.stream.deallocate()
    }

    /// An upper bound on the fragment of `length` input bytes (sync flush marker included).
    func bound(_ length: Int) -> Int {
        Int(CZlib_deflateBound(self.stream, UInt(length))) + 8
    }

    /// Appends the fragment of `inputs` (one after the other) to `output`; returns the CRC-32 and the
    /// length of the input, which the gzip trailer of each client that gets the fragment accounts for.
    func fragment<Inputs: Sequence<ByteBuffer>>(
        of inputs: Inputs,
        into output: inout ByteBuffer
    ) -> (crc: UInt32, length: Int) {
        let reset = CZlib_deflateReset(self.stream)
        precondition(reset == Z_OK, "deflateReset failed: \(reset)")
        var crc: UInt32 = 0
        var length = 0
        for input in inputs where input.readableBytes > 0 {
            input.withUnsafeReadableBytes { raw in
                let bytes = raw.bindMemory(to: UInt8.self)
                crc = CZlib_crc32(crc, bytes.baseAddress, UInt32(bytes.count))
                length += bytes.count
                // zlib does not write through `next_in`; the input is copied into its window as it goes.
                self.stream.pointee.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress)
                self.stream.pointee.avail_in = UInt32(bytes.count)
                self.run(Z_NO_FLUSH, into: &output)
            }
        }
        self.run(Z_SYNC_FLUSH, into: &output)
        self.stream.pointee.next_in = nil
        return (crc, length)
    }

    /// Calls deflate until it took all input and, for the flush, left output space unused: zlib stops when
    /// the output is full and expects to be called again with the same flush mode.
    private func run(_ flush: Int32, into output: inout ByteBuffer) {
        repeat {
            if output.writableBytes < 64 {
                output.reserveCapacity(minimumWritableBytes: max(output.capacity, 256))
            }
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { space in
                self.stream.pointee.next_out = space.baseAddress!.assumingMemoryBound(to: UInt8.self)
                self.stream.pointee.avail_out = UInt32(space.count)
                let result = CZlib_deflate(self.stream, flush)
                // Z_BUF_ERROR: nothing left to do (no input, flush already complete); not an error.
                precondition(result == Z_OK || result == Z_BUF_ERROR, "deflate failed: \(result)")
                let written = space.count - Int(self.stream.pointee.avail_out)
                self.stream.pointee.next_out = nil
                return written
            }
        } while self.stream.pointee.avail_in > 0 || self.stream.pointee.avail_out == 0
    }
}
