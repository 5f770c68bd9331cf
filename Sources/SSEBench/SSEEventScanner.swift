#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds SSE event ends in a body stream and reads the two numbers the bench needs from each event, with
/// far less work than an SSE parser: memchr for LF, a look back for a blank line (`\n\n` or `\r\n\r\n`),
/// and memchr for `"` to find the `"seq":` and `"ts":` keys. An event split across reads keeps only its
/// unfinished tail. Events without `"seq":` outside comment lines (keepalives, `retry:`) are no deliveries.
///
/// With `readsFields` (poll and multi-feed clients) it also reads each finished event's `id:` and
/// `retry:` lines, as `EventSource` keeps them: the last event id (what the next poll sends as
/// `Last-Event-ID`; an id-only block moves it too) and the reconnection time. Plain streams leave it off:
/// it walks every line of every event.
public struct SSEEventScanner: Sendable {
    /// An unfinished event over `maximumTail` bytes: a body that is no event stream (say an HTML page
    /// read until close), which would otherwise be held in memory whole.
    public struct EventTooLarge: Error, Equatable, CustomStringConvertible {
        public var description: String { "an event over \(SSEEventScanner.maximumTail) bytes without a blank line" }
    }

    /// The most bytes of one unfinished event the scanner holds.
    public static let maximumTail = 1 << 20

    /// The start of an event whose end has not arrived yet.
    private var tail: [UInt8] = []
    private var seqs = SeqTracker()
    private let readsFields: Bool
    /// The last `id:` of a finished event (with `readsFields`); "" after an empty `id:`, as in `EventSource`.
    public private(set) var lastEventID: String?
    /// The last valid `retry:` of a finished event, ms (with `readsFields`).
    public private(set) var retryMillis: Int?

    public init(readsFields: Bool = false) {
        self.readsFields = readsFields
    }

    /// Scans the next bytes of the body; calls `deliver` for each finished event that has a seq number.
    /// Throws `EventTooLarge` (after delivering the events that did finish) when the unfinished tail
    /// would outgrow `maximumTail`; the scanner then holds nothing and the stream should be dropped.
    public mutating func scan(_ bytes: UnsafeRawBufferPointer, deliver: (ScannedDelivery) -> Void) throws(EventTooLarge)
    {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let count = bytes.count
        var eventStart = 0
        var searchFrom = 0
        while searchFrom < count, let found = memchr(base + searchFrom, Int32(UInt8(ascii: "\n")), count - searchFrom) {
            let lineFeed = base.distance(to: UnsafeRawPointer(found))
            searchFrom = lineFeed + 1
            guard self.endsBlankLine(at: lineFeed, in: bytes) else { continue }
            if self.tail.isEmpty {
                self.event(UnsafeRawBufferPointer(rebasing: bytes[eventStart..<searchFrom]), deliver: deliver)
            } else {
                self.tail.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[eventStart..<searchFrom]))
                self.tail.withUnsafeBytes { self.event($0, deliver: deliver) }
                self.tail.removeAll(keepingCapacity: true)
            }
            eventStart = searchFrom
        }
        if eventStart < count {
            guard self.tail.count + (count - eventStart) <= Self.maximumTail else {
                self.tail = []
                throw EventTooLarge()
            }
            self.tail.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[eventStart...]))
        }
    }

    /// Forgets the start of an event whose end never came (its connection closed): the next connection's
    /// bytes start a new event. The seq count, last event id and `retry:` stay.
    public mutating func dropUnfinishedEvent() {
        self.tail.removeAll()
    }

    /// Whether the LF at `index` ends a blank line: the byte before it is LF, or CR with an LF before that.
    /// Looks back into the tail when the LF is at the start of this read.
    private func endsBlankLine(at index: Int, in bytes: UnsafeRawBufferPointer) -> Bool {
        BlankLine.endsAt(
            previous: self.byte(at: index - 1, in: bytes),
            beforePrevious: self.byte(at: index - 2, in: bytes)
        )
    }

    private func byte(at index: Int, in bytes: UnsafeRawBufferPointer) -> UInt8? {
        if index >= 0 { return bytes[index] }
        let inTail = self.tail.count + index
        return inTail >= 0 ? self.tail[inTail] : nil
    }

    private mutating func event(_ bytes: UnsafeRawBufferPointer, deliver: (ScannedDelivery) -> Void) {
        var id: String?
        if self.readsFields {
            let fields = Self.idAndRetry(in: bytes)
            id = fields.id
            if let id { self.lastEventID = id }
            if let retry = fields.retry { self.retryMillis = retry }
        }
        let numbers = Self.seqAndTimestamp(in: bytes)
        guard let seq = numbers.seq else { return }
        let step = self.seqs.record(seq)
        deliver(
            ScannedDelivery(
                seq: seq,
                sentMicros: numbers.ts,
                missedBefore: step.missed,
                duplicate: step.duplicate,
                id: id
            )
        )
    }

    /// The values of the event's last `id:` line (one space after the colon dropped; an id with NUL is
    /// ignored, as the SSE spec says) and of its last `retry:` line that is all digits.
    static func idAndRetry(in bytes: UnsafeRawBufferPointer) -> (id: String?, retry: Int?) {
        guard let base = bytes.baseAddress else { return (nil, nil) }
        var id: String?
        var retry: Int?
        var start = 0
        while start < bytes.count {
            let end =
                memchr(base + start, Int32(UInt8(ascii: "\n")), bytes.count - start).map {
                    base.distance(to: UnsafeRawPointer($0))
                } ?? bytes.count
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            if Self.matches("id:", in: bytes, at: start) {
                let value = UnsafeRawBufferPointer(
                    rebasing: bytes[Self.valueStart(start + 3, lineEnd, bytes)..<lineEnd]
                )
                if !value.contains(0) { id = String(decoding: value, as: UTF8.self) }
            } else if Self.matches("retry:", in: bytes, at: start) {
                let from = Self.valueStart(start + 6, lineEnd, bytes)
                if from < lineEnd, let value = Self.number(in: bytes, at: from), Self.digits(from, lineEnd, bytes) {
                    retry = Int(value)
                }
            }
            start = end + 1
        }
        return (id, retry)
    }

    /// Where a field's value starts: after the colon, and after one space if there is one.
    private static func valueStart(_ afterColon: Int, _ lineEnd: Int, _ bytes: UnsafeRawBufferPointer) -> Int {
        afterColon < lineEnd && bytes[afterColon] == UInt8(ascii: " ") ? afterColon + 1 : min(afterColon, lineEnd)
    }

    private static func digits(_ from: Int, _ to: Int, _ bytes: UnsafeRawBufferPointer) -> Bool {
        (from..<to).allSatisfy { bytes[$0] &- UInt8(ascii: "0") < 10 }
    }

    /// The numbers after `"seq":` and `"ts":`: visits each `"` (memchr) and compares only the bytes after it,
    /// stopping once both are found, so a long padded payload after them is never walked.
    static func seqAndTimestamp(in bytes: UnsafeRawBufferPointer) -> (seq: Int64?, ts: Int64?) {
        guard let base = bytes.baseAddress else { return (nil, nil) }
        var seq: Int64?
        var ts: Int64?
        var position = 0
        while position < bytes.count,
            let found = memchr(base + position, Int32(UInt8(ascii: "\"")), bytes.count - position)
        {
            let quote = base.distance(to: UnsafeRawPointer(found))
            position = quote + 1
            if seq == nil, Self.matches("seq\":", in: bytes, at: position), !Self.isInComment(quote, in: bytes) {
                seq = Self.number(in: bytes, at: position + 5)
            } else if ts == nil, Self.matches("ts\":", in: bytes, at: position) {
                ts = Self.number(in: bytes, at: position + 4)
            }
            if seq != nil && ts != nil { break }
        }
        return (seq, ts)
    }

    /// Whether the line holding `offset` is an SSE comment (starts with `:`), walking back to its start.
    private static func isInComment(_ offset: Int, in bytes: UnsafeRawBufferPointer) -> Bool {
        var start = offset
        while start > 0 && bytes[start - 1] != UInt8(ascii: "\n") { start -= 1 }
        return bytes[start] == UInt8(ascii: ":")
    }

    private static func matches(_ key: StaticString, in bytes: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        let length = key.utf8CodeUnitCount
        guard offset + length <= bytes.count, bytes[offset] == key.utf8Start.pointee else { return false }
        return memcmp(bytes.baseAddress! + offset, key.utf8Start, length) == 0
    }

    private static func number(in bytes: UnsafeRawBufferPointer, at start: Int) -> Int64? {
        var value: Int64 = 0
        var position = start
        while position < bytes.count, case let digit = bytes[position] &- UInt8(ascii: "0"), digit < 10 {
            value = value &* 10 &+ Int64(digit)
            position += 1
        }
        return position > start ? value : nil
    }
}
