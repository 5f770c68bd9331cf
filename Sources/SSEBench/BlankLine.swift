/// The one rule for where an SSE event or an HTTP/1 head ends: an LF whose line is empty.
enum BlankLine {
    /// Whether an LF preceded by these two bytes (nil: none) ends a blank line (`\n\n` or `\n\r\n`).
    @inline(__always)
    static func endsAt(previous: UInt8?, beforePrevious: @autoclosure () -> UInt8?) -> Bool {
        previous == UInt8(ascii: "\n") || (previous == UInt8(ascii: "\r") && beforePrevious() == UInt8(ascii: "\n"))
    }
}
