import CompressNIO
import NIOCore

extension ZlibDecompressor {
    /// Inflates all of `input` (one body part or DATA frame as it arrived), however much it expands: what a
    /// browser can decode from the bytes received so far. Output space grows until zlib leaves some unused.
    func inflateAll(_ input: inout ByteBuffer) throws -> ByteBuffer {
        var output = ByteBufferAllocator().buffer(capacity: max(1 << 16, input.readableBytes * 8))
        while input.readableBytes > 0 {
            do {
                try self.inflate(from: &input, to: &output)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                output.reserveCapacity(minimumWritableBytes: output.capacity)
                continue
            }
            if output.writableBytes > 0 { break }
            output.reserveCapacity(minimumWritableBytes: output.capacity)
        }
        return output
    }
}
