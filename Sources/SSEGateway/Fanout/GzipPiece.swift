import NIOCore

/// One fragment of a batch or a replay for gzip clients (`GzipFragment.pieces`): the fragment, the number
/// of events it carries (the delivery count), and when the first of them arrived (the clock of `max_lag`).
struct GzipPiece {
    var fragment: ByteBuffer
    var events: Int
    var producedAt: NIODeadline
}
