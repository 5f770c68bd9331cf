import CompressNIO
import NIOCore

extension ZlibDecompressor {
    /// Inflates all of `input` (one body part or DATA frame as it arrived), however much it expands: what a
    /// browser can decode from the bytes received so far. Output space grows until zlib leaves some unused.
    func inflateAll(_ input: inout ByteBuffer) throws -> ByteBuffer {
        var output = ByteBufferAllocator().buffer(capacity: max(1 << 16, input.readableBytes * 8))
        // zlib may hold output back when it fills the buffer, even with all input taken: go on until it
        // stops with room to spare.
        var outputFull = false
        repeat {
            outputFull = false
            let before = (input.readableBytes, output.readableBytes)
            do {
                try self.inflate(from: &input, to: &output)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                outputFull = output.writableBytes == 0
            } catch let error as CompressNIOError where error == .inputBufferOverflow && input.readableBytes == 0 {
                // Asked again after a full buffer, and zlib had nothing more.
            }
            if output.writableBytes == 0 {
                outputFull = true
                output.reserveCapacity(minimumWritableBytes: output.capacity)
            } else if before == (input.readableBytes, output.readableBytes) {
                break  // no progress: the end of the gzip member, or nothing more to give
            }
        } while input.readableBytes > 0 || outputFull
        return output
    }
}
