#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The parts of an HTTP/1.1 response head the load client acts on, parsed by hand from the raw bytes
/// (status line, then `Name: value` lines up to a blank line, at most 64 KiB) so that no HTTP parser or
/// header dictionary sits in the path of a stream that lives for minutes.
public struct HTTPResponseHead: Sendable, Equatable {
    /// How the body is delimited (RFC 9112 §6.3).
    public enum Framing: Sendable, Equatable {
        case chunked
        case length(Int)
        case untilClose
    }

    public struct Malformed: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public static let maximumSize = 64 * 1024

    public var status: Int
    public var framing: Framing
    public var gzip: Bool
    /// `Retry-After` in seconds (the delay form; an HTTP date is ignored), for `--reconnect` clients.
    public var retryAfterSeconds: Int?

    public init(status: Int, framing: Framing, gzip: Bool, retryAfterSeconds: Int? = nil) {
        self.status = status
        self.framing = framing
        self.gzip = gzip
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// Parses a head at the start of `bytes`. Nil when the blank line has not arrived yet; otherwise the
    /// head and its length in bytes (the body starts right after).
    public static func parse(
        _ bytes: UnsafeRawBufferPointer
    ) throws(Malformed) -> (head: HTTPResponseHead, length: Int)? {
        guard let length = Self.headLength(bytes) else {
            if bytes.count > Self.maximumSize {
                throw Malformed(description: "response head over \(Self.maximumSize) bytes")
            }
            return nil
        }
        guard length <= Self.maximumSize else {
            throw Malformed(description: "response head over \(Self.maximumSize) bytes")
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<length]), as: UTF8.self)
        var lines = text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .makeIterator()
        guard let statusLine = lines.next(), let status = Self.status(statusLine) else {
            throw Malformed(description: "bad status line")
        }
        var head = HTTPResponseHead(status: status, framing: .untilClose, gzip: false)
        var contentLength: Int?
        while let line = lines.next() {
            guard let colon = line.firstIndex(of: ":") else { throw Malformed(description: "header line without ':'") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingSpaces.lowercased()
            switch name {
            case "transfer-encoding":
                if value.split(separator: ",").last?.trimmingSpaces == "chunked" { head.framing = .chunked }
            case "content-length":
                guard let count = Int(value), count >= 0 else { throw Malformed(description: "bad Content-Length") }
                contentLength = count
            case "content-encoding":
                head.gzip = value.split(separator: ",").contains { $0.trimmingSpaces == "gzip" }
            case "retry-after":
                head.retryAfterSeconds = Int(value).flatMap { $0 >= 0 ? $0 : nil }
            default:
                break
            }
        }
        if head.framing != .chunked, let contentLength { head.framing = .length(contentLength) }
        return (head, length)
    }

    /// `HTTP/1.x NNN reason` → NNN.
    private static func status(_ line: Substring) -> Int? {
        let parts = line.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3 else { return nil }
        return Int(parts[1])
    }

    /// The length up to and including the blank line that ends the head (CRLF or bare LF line ends).
    private static func headLength(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard let base = bytes.baseAddress else { return nil }
        var position = 0
        while position < bytes.count,
            let found = memchr(base + position, Int32(UInt8(ascii: "\n")), bytes.count - position)
        {
            let lineFeed = base.distance(to: UnsafeRawPointer(found))
            position = lineFeed + 1
            let previous = lineFeed >= 1 ? bytes[lineFeed - 1] : nil
            if BlankLine.endsAt(previous: previous, beforePrevious: lineFeed >= 2 ? bytes[lineFeed - 2] : nil) {
                return position
            }
        }
        return nil
    }
}

extension Substring {
    /// Without the spaces and tabs (HTTP's optional whitespace) at either end.
    fileprivate var trimmingSpaces: Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return text
    }
}
