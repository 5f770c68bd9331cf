import NIOCore

/// The fragments of one batch for the gzip clients that take all of it, made on first use in a pass: one
/// deflate of the batch per framing, however many clients. A batch over `GzipFragment.inputLimit` is cut
/// into several fragments, each ended by a sync flush, so that a client's queue paces them like the plain
/// path's events (and each event is still decodable as soon as its fragment arrives).
struct BatchFragments {
    private var chunked: [GzipPiece]?
    private var raw: [GzipPiece]?

    mutating func whole(_ batch: [EncodedEvent], chunked: Bool, deflater: FragmentDeflater) -> [GzipPiece] {
        if chunked {
            if let pieces = self.chunked { return pieces }
        } else if let pieces = self.raw {
            return pieces
        }
        let pieces = GzipFragment.pieces(batch, chunked: chunked, deflater: deflater)
        if chunked { self.chunked = pieces } else { self.raw = pieces }
        return pieces
    }
}
