import CompressNIO
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import struct Histogram.Histogram

/// Per event loop tallies of the load tool: touched only on their loop, merged at the end.
final class BenchLoopStats {
    var connected = 0
    var connectErrors = 0
    var badStatus = 0
    var disconnects = 0
    var events = 0
    var bytes = 0
    /// Events the origin's `seq` numbering says a client never got.
    var missing = 0
    var latencyMicros = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
}

/// One SSE client of the load tool. It does the least work per event: llhttp de-chunks, then a byte scan
/// finds each event's end and reads the `"seq":` and `"ts":` numbers the built-in origin puts in `data`.
final class BenchClientHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let stats: BenchLoopStats
    private let request: HTTPRequestHead
    private var streaming = false
    private var lastSeq: Int64 = -1
    private var pendingTail: [UInt8] = []

    /// Set when the bench asked for gzip: body parts are inflated before counting events.
    private let inflater: ZlibDecompressor?

    init(stats: BenchLoopStats, request: HTTPRequestHead, gunzip: Bool) {
        self.stats = stats
        self.request = request
        self.inflater = gunzip ? try? ZlibDecompressor(algorithm: .gzip) : nil
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(self.wrapOutboundOut(.head(self.request)), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            if head.status == .ok {
                self.streaming = true
                self.stats.connected += 1
            } else {
                self.stats.badStatus += 1
                context.close(promise: nil)
            }
        case .body(var buffer):
            self.stats.bytes += buffer.readableBytes
            if let inflater = self.inflater {
                var inflated = context.channel.allocator.buffer(capacity: max(4096, buffer.readableBytes * 16))
                do {
                    try inflater.inflate(from: &buffer, to: &inflated)
                } catch {
                    context.close(promise: nil)
                    return
                }
                buffer = inflated
            }
            self.scan(buffer)
        case .end:
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.streaming {
            self.streaming = false
            self.stats.connected -= 1
            self.stats.disconnects += 1
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    /// Counts events (blank-line ends) and records latency from `"ts":` (µs since the epoch).
    private func scan(_ buffer: ByteBuffer) {
        let now = BenchClock.nowMicros()
        buffer.withUnsafeReadableBytes { raw in
            // An event may straddle reads; keep the unfinished tail (small: one event at most).
            if !self.pendingTail.isEmpty {
                self.pendingTail.append(contentsOf: raw)
                let joined = self.pendingTail
                self.pendingTail.removeAll(keepingCapacity: true)
                joined.withUnsafeBytes { self.scanBytes($0, now: now) }
            } else {
                self.scanBytes(raw, now: now)
            }
        }
    }

    private func scanBytes(_ bytes: UnsafeRawBufferPointer, now: Int64) {
        var eventStart = 0
        var index = 0
        let count = bytes.count
        while index + 1 < count {
            if bytes[index] == UInt8(ascii: "\n") && bytes[index + 1] == UInt8(ascii: "\n") {
                self.event(UnsafeRawBufferPointer(rebasing: bytes[eventStart..<index]), now: now)
                index += 2
                eventStart = index
            } else {
                index += 1
            }
        }
        if eventStart < count {
            self.pendingTail.append(contentsOf: bytes[eventStart..<count])
        }
    }

    private func event(_ bytes: UnsafeRawBufferPointer, now: Int64) {
        guard let seq = Self.number(after: "\"seq\":", in: bytes) else { return }  // comments, retry, others
        self.stats.events += 1
        if self.lastSeq >= 0 && seq > self.lastSeq + 1 {
            self.stats.missing += Int(seq - self.lastSeq - 1)
        }
        self.lastSeq = max(self.lastSeq, seq)
        if let sent = Self.number(after: "\"ts\":", in: bytes) {
            _ = self.stats.latencyMicros.record(UInt64(max(0, now - sent)))
        }
    }

    private static func number(after key: StaticString, in bytes: UnsafeRawBufferPointer) -> Int64? {
        let keyLength = key.utf8CodeUnitCount
        let keyBytes = UnsafeRawBufferPointer(start: key.utf8Start, count: keyLength)
        guard bytes.count > keyLength else { return nil }
        var start = 0
        while start + keyLength <= bytes.count {
            if memcmp(bytes.baseAddress! + start, keyBytes.baseAddress!, keyLength) == 0 {
                var value: Int64 = 0
                var position = start + keyLength
                var digits = 0
                while position < bytes.count, bytes[position] >= UInt8(ascii: "0"), bytes[position] <= UInt8(ascii: "9") {
                    value = value * 10 + Int64(bytes[position] - UInt8(ascii: "0"))
                    position += 1
                    digits += 1
                }
                return digits > 0 ? value : nil
            }
            start += 1
        }
        return nil
    }
}

enum BenchClock {
    static func nowMicros() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
    }

    /// User and system CPU seconds of this process so far.
    static func cpuSeconds() -> (user: Double, system: Double) {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return (
            Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6,
            Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        )
    }
}
