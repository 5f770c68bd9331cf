import struct Histogram.Histogram

/// How fast the clients got their streams open, as of the measured window's start: the 200 heads, the
/// time from the first connect to the last of them, and each client's time from its request to its head.
/// With many clients and `--connect-concurrency` high, `perSecond` is the server's stream-open rate (TCP
/// accept, request, any access check, join) as far as the load client on the same cores can drive it.
public struct BenchOpens: Sendable {
    /// Clients with a 200 head when the window started.
    public var opened: Int
    /// From the first connect to the last 200 head, seconds (0 when no stream opened).
    public var seconds: Double
    /// Request sent to 200 head, µs.
    public var latencyMicros: Histogram<UInt64>
    /// The load client's own CPU from the first connect to the window's start (ramp-up and head wait), s.
    public var benchCPUSeconds: Double

    public var perSecond: Double { self.opened > 0 ? Double(self.opened) / max(self.seconds, 0.000_001) : 0 }

    func ms(_ percentile: Double) -> Double { Double(self.latencyMicros.valueAtPercentile(percentile)) / 1000 }
    var maxMs: Double { Double(self.latencyMicros.max) / 1000 }
}
