import NIOCore

/// An incremental Server-Sent Events parser that follows WHATWG HTML "9.2.6 Interpreting an event stream".
///
/// Feed it bytes as they arrive, split anywhere: the outputs, their order and ``lastEventID`` do not depend
/// on where the stream was cut. That holds for a CRLF split across two calls (one line end, not two) and for
/// a leading UTF-8 BOM split across calls.
///
/// Departures from the standard, all deliberate and required by the gateway:
/// - A block with a valid `id` field but no `data` field is reported as an id-only event
///   (`data == nil`) instead of being silently dropped, because it still moves the client's resume position.
/// - ``ServerSentEvent/id`` is the `id` field *of the block* (nil if it had none), not the persistent
///   last event ID buffer; the latter is exposed as ``lastEventID``.
/// - Lines and blocks are bounded by ``Limits``, so a hostile upstream cannot make the parser buffer
///   unbounded memory.
///
/// Invariants between calls:
/// - `partialLine` holds only bytes of a line whose terminator has not arrived (never a CR or LF), and at
///   most `limits.maxLineBytes` of them, except for up to two held-back bytes of a BOM that turned out not
///   to be one (checked as soon as the line grows or ends).
/// - The block being built (data, event type, id) totals at most `limits.maxEventBytes` bytes.
/// - `lastEventID` never contains U+0000.
///
/// UTF-8 is decoded per field value with replacement. That is equivalent to decoding the whole stream first,
/// as the standard does, because every byte the parser splits on (CR, LF, `:` and space) is ASCII, and an
/// ASCII byte always terminates any pending ill-formed sequence.
public struct SSEParser: Sendable {
    /// Bounds on what the parser is willing to buffer; both are in bytes as received (before UTF-8 repair).
    public struct Limits: Sendable {
        /// The longest line accepted, excluding its terminator and any leading BOM.
        public var maxLineBytes: Int
        /// The largest block accepted: the `data` as it would be dispatched (lines joined by LF) plus the
        /// current `event` type plus the current `id` of the block.
        public var maxEventBytes: Int

        public init(maxLineBytes: Int = 1 << 20, maxEventBytes: Int = 1 << 20) {
            self.maxLineBytes = maxLineBytes
            self.maxEventBytes = maxEventBytes
        }
    }

    /// What the parser reports, in stream order.
    public enum Output: Hashable, Sendable {
        /// A dispatched block (see ``ServerSentEvent`` for the id-only case).
        case event(ServerSentEvent)
        /// A valid `retry` field (ASCII digits only) in milliseconds, reported as soon as its line is parsed,
        /// because the standard applies it immediately rather than at dispatch.
        case retry(Int)
    }

    /// Why parsing stopped. After a throw, the partial line and block are gone; call ``reset()``
    /// before feeding the parser again.
    public enum ParseError: Error, Hashable, Sendable {
        /// A line exceeded ``Limits/maxLineBytes``; thrown as soon as the overflow is seen, even if the
        /// line's terminator has not arrived yet.
        case lineTooLong(limit: Int)
        /// A block exceeded ``Limits/maxEventBytes``; thrown by the field that would push it over.
        case eventTooLarge(limit: Int)
    }

    private enum BOMState: Sendable {
        /// Still at the start of the stream, `matched` bytes of EF BB BF seen so far (0...2).
        case expecting(matched: Int)
        /// Past the start: a BOM is now ordinary data.
        case done
    }

    private static let byteOrderMark: (UInt8, UInt8, UInt8) = (0xEF, 0xBB, 0xBF)
    private static let lf = UInt8(ascii: "\n")
    private static let cr = UInt8(ascii: "\r")
    private static let colon = UInt8(ascii: ":")
    private static let space = UInt8(ascii: " ")

    /// Buffers whose capacity grew beyond this are released rather than kept for the next line or block,
    /// so one huge event does not pin a megabyte per feed for the lifetime of the connection.
    private static let retainedCapacity = 16 * 1024

    private let limits: Limits

    /// The standard's "last event ID buffer": it persists across blocks and across ``reset()``, and is set by
    /// every valid `id` line (one not containing U+0000), including an empty one.
    public private(set) var lastEventID: String = ""

    private var bomState: BOMState = .expecting(matched: 0)
    /// The previous call ended with a CR, so an LF at the start of the next call completes that CRLF.
    private var lastWasCR = false
    /// Bytes of a line whose terminator has not arrived yet. Empty whenever lines fit in one read.
    private var partialLine: [UInt8] = []

    /// The standard's data buffer, kept as raw bytes so multi-line data is decoded once, at dispatch.
    private var dataBuffer: [UInt8] = []
    private var eventType: String = ""
    private var eventTypeByteCount = 0
    private var blockID: String? = nil
    private var blockIDByteCount = 0

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Consumes all readable bytes of `buffer`, calling `output` for each retry/event in order.
    ///
    /// The reader index is moved to the writer index even when this throws.
    public mutating func parse(_ buffer: inout ByteBuffer, _ output: (Output) -> Void) throws(ParseError) {
        let failure: ParseError? = buffer.withUnsafeReadableBytes { bytes in
            self.consumeCapturingError(bytes, output)
        }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        if let failure {
            throw failure
        }
    }

    /// Convenience for tests and small inputs.
    public mutating func parse(_ bytes: some Collection<UInt8>, _ output: (Output) -> Void) throws(ParseError) {
        let contiguous: ParseError?? = bytes.withContiguousStorageIfAvailable { pointer in
            self.consumeCapturingError(UnsafeRawBufferPointer(pointer), output)
        }
        let failure: ParseError?
        if let contiguous {
            failure = contiguous
        } else {
            failure = Array(bytes).withUnsafeBytes { pointer in
                self.consumeCapturingError(pointer, output)
            }
        }
        if let failure {
            throw failure
        }
    }

    /// The stream ended (or a new connection starts).
    ///
    /// Drops the partial line and the partial block (the standard does not dispatch a block that was not
    /// terminated by a blank line) and re-arms BOM stripping for the next stream. ``lastEventID`` is kept,
    /// because the gateway sends it as `Last-Event-ID` when it reconnects.
    public mutating func reset() {
        self.bomState = .expecting(matched: 0)
        self.lastWasCR = false
        Self.clear(&self.partialLine)
        self.resetBlock()
    }

    // MARK: - Scanning

    /// Bridges the closure-based buffer accessors, which only rethrow untyped errors, to typed throws.
    private mutating func consumeCapturingError(
        _ bytes: UnsafeRawBufferPointer,
        _ output: (Output) -> Void
    ) -> ParseError? {
        do throws(ParseError) {
            try self.consume(bytes, output)
            return nil
        } catch {
            // Free what the failed block buffered right away; the caller is expected to reset() anyway.
            Self.clear(&self.partialLine)
            self.resetBlock()
            return error
        }
    }

    private mutating func consume(_ bytes: UnsafeRawBufferPointer, _ output: (Output) -> Void) throws(ParseError) {
        let count = bytes.count
        var index = 0

        if case .expecting = self.bomState {
            index = self.skipByteOrderMark(bytes)
        }

        if self.lastWasCR, index < count {
            self.lastWasCR = false
            if bytes[index] == Self.lf {
                index += 1
            }
        }

        while index < count {
            let end = Self.lineBreakIndex(in: bytes, from: index)

            guard end < count else {
                // The line continues in a later read; only now is copying unavoidable.
                let pending = count - index
                guard self.partialLine.count + pending <= self.limits.maxLineBytes else {
                    throw .lineTooLong(limit: self.limits.maxLineBytes)
                }
                self.partialLine.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<count]))
                return
            }

            let segment = UnsafeRawBufferPointer(rebasing: bytes[index..<end])
            if self.partialLine.isEmpty {
                guard segment.count <= self.limits.maxLineBytes else {
                    throw .lineTooLong(limit: self.limits.maxLineBytes)
                }
                try self.processLine(segment, output)
            } else {
                guard self.partialLine.count + segment.count <= self.limits.maxLineBytes else {
                    throw .lineTooLong(limit: self.limits.maxLineBytes)
                }
                self.partialLine.append(contentsOf: segment)
                // Move the line out of `self` so processLine may mutate `self` while reading it.
                var line: [UInt8] = []
                swap(&line, &self.partialLine)
                let failure: ParseError? = line.withUnsafeBytes { pointer in
                    do throws(ParseError) {
                        try self.processLine(pointer, output)
                        return nil
                    } catch {
                        return error
                    }
                }
                Self.clear(&line)
                swap(&line, &self.partialLine)
                if let failure {
                    throw failure
                }
            }

            if bytes[end] == Self.cr {
                if end + 1 < count {
                    index = bytes[end + 1] == Self.lf ? end + 2 : end + 1
                } else {
                    // Dispatch now rather than wait for a possible LF: a lone CR is a complete line end.
                    self.lastWasCR = true
                    index = count
                }
            } else {
                index = end + 1
            }
        }
    }

    /// The index of the first CR or LF at or after `start`, or `bytes.count` if there is none.
    ///
    /// This is the hottest loop of the gateway (it sees every upstream byte), and most bytes are not line
    /// breaks, so it tests eight bytes per step: a word contains a CR or LF exactly when XOR-ing it with
    /// repeated CR or LF yields a zero byte, which the classic "has zero byte" bit trick detects.
    /// The serializer splits text with it too, so both agree on what a line break is.
    static func lineBreakIndex(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        let count = bytes.count
        var index = start
        if let base = bytes.baseAddress {
            let ones: UInt64 = 0x0101_0101_0101_0101
            let highBits: UInt64 = 0x8080_8080_8080_8080
            let lfs = ones &* UInt64(Self.lf)
            let crs = ones &* UInt64(Self.cr)
            while count - index >= 8 {
                let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                let lfZeroes = word ^ lfs
                let crZeroes = word ^ crs
                let hasZeroByte =
                    ((lfZeroes &- ones) & ~lfZeroes & highBits) | ((crZeroes &- ones) & ~crZeroes & highBits)
                if hasZeroByte != 0 {
                    break
                }
                index += 8
            }
        }
        while index < count {
            let byte = bytes[index]
            if byte == Self.lf || byte == Self.cr {
                return index
            }
            index += 1
        }
        return count
    }

    /// Consumes the part of a BOM present at the start of `bytes` and returns the index after it.
    private mutating func skipByteOrderMark(_ bytes: UnsafeRawBufferPointer) -> Int {
        var index = 0
        while index < bytes.count, case .expecting(let matched) = self.bomState {
            let expected: UInt8
            switch matched {
            case 0: expected = Self.byteOrderMark.0
            case 1: expected = Self.byteOrderMark.1
            default: expected = Self.byteOrderMark.2
            }
            if bytes[index] == expected {
                index += 1
                self.bomState = matched == 2 ? .done : .expecting(matched: matched + 1)
            } else {
                // Not a BOM after all: the bytes held back so far are the start of the first line. None of
                // them is a line terminator, and the next append or line end enforces maxLineBytes on them.
                self.bomState = .done
                if matched >= 1 { self.partialLine.append(Self.byteOrderMark.0) }
                if matched >= 2 { self.partialLine.append(Self.byteOrderMark.1) }
            }
        }
        return index
    }

    // MARK: - Interpretation

    private mutating func processLine(_ line: UnsafeRawBufferPointer, _ output: (Output) -> Void) throws(ParseError) {
        guard let first = line.first else {
            self.dispatch(output)
            return
        }
        if first == Self.colon {
            return
        }

        let name: UnsafeRawBufferPointer
        let value: UnsafeRawBufferPointer
        if let colonIndex = line.firstIndex(of: Self.colon) {
            name = UnsafeRawBufferPointer(rebasing: line[0..<colonIndex])
            var valueStart = colonIndex + 1
            if valueStart < line.count, line[valueStart] == Self.space {
                valueStart += 1
            }
            value = UnsafeRawBufferPointer(rebasing: line[valueStart..<line.count])
        } else {
            name = line
            value = UnsafeRawBufferPointer(rebasing: line[line.count..<line.count])
        }

        if Self.equals(name, "data") {
            // Growing the data by this line costs its bytes plus the LF joining it to the previous line.
            let newSize = self.dataBuffer.count + value.count + self.eventTypeByteCount + self.blockIDByteCount
            guard newSize <= self.limits.maxEventBytes else {
                throw .eventTooLarge(limit: self.limits.maxEventBytes)
            }
            self.dataBuffer.append(contentsOf: value)
            self.dataBuffer.append(Self.lf)
        } else if Self.equals(name, "event") {
            let newSize = self.dispatchedDataByteCount + value.count + self.blockIDByteCount
            guard newSize <= self.limits.maxEventBytes else {
                throw .eventTooLarge(limit: self.limits.maxEventBytes)
            }
            self.eventType = String(decoding: value, as: UTF8.self)
            self.eventTypeByteCount = value.count
        } else if Self.equals(name, "id") {
            if value.contains(0) {
                return
            }
            let newSize = self.dispatchedDataByteCount + self.eventTypeByteCount + value.count
            guard newSize <= self.limits.maxEventBytes else {
                throw .eventTooLarge(limit: self.limits.maxEventBytes)
            }
            let id = String(decoding: value, as: UTF8.self)
            self.lastEventID = id
            self.blockID = id
            self.blockIDByteCount = value.count
        } else if Self.equals(name, "retry") {
            if let milliseconds = Self.parseRetry(value) {
                output(.retry(milliseconds))
            }
        }
        // Any other field name is ignored, as the standard requires; names are case-sensitive.
    }

    /// The size of the data as it would be dispatched: without the trailing LF of the last line.
    private var dispatchedDataByteCount: Int {
        self.dataBuffer.isEmpty ? 0 : self.dataBuffer.count - 1
    }

    private mutating func dispatch(_ output: (Output) -> Void) {
        if self.dataBuffer.isEmpty {
            if let id = self.blockID {
                output(.event(ServerSentEvent(id: id, type: nil, data: nil)))
            }
        } else {
            let data = self.dataBuffer.withUnsafeBytes { bytes in
                String(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 1)]), as: UTF8.self)
            }
            let type = self.eventType.isEmpty ? nil : self.eventType
            output(.event(ServerSentEvent(id: self.blockID, type: type, data: data)))
        }
        self.resetBlock()
    }

    private mutating func resetBlock() {
        Self.clear(&self.dataBuffer)
        self.eventType = ""
        self.eventTypeByteCount = 0
        self.blockID = nil
        self.blockIDByteCount = 0
    }

    private static func clear(_ buffer: inout [UInt8]) {
        if buffer.capacity <= Self.retainedCapacity {
            buffer.removeAll(keepingCapacity: true)
        } else {
            buffer = []
        }
    }

    private static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else {
            return false
        }
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        for index in 0..<bytes.count where bytes[index] != expected[index] {
            return false
        }
        return true
    }

    /// ASCII digits only (no sign, no spaces), non-empty; values that do not fit in `Int` are ignored
    /// like any other invalid value rather than clamped, since no sane server means them.
    private static func parseRetry(_ value: UnsafeRawBufferPointer) -> Int? {
        guard !value.isEmpty else {
            return nil
        }
        var result = 0
        for byte in value {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                return nil
            }
            let (shifted, overflow1) = result.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = shifted.addingReportingOverflow(Int(byte &- UInt8(ascii: "0")))
            if overflow1 || overflow2 {
                return nil
            }
            result = sum
        }
        return result
    }
}
