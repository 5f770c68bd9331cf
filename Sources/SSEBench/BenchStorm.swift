import Foundation

/// What reconnecting clients (`--reconnect`) went through over the whole run: how often they came back,
/// how often they were turned away, how long the worst outage lasted, and how fast new streams opened at
/// the peak. "Full recovery" runs from the first stream that closed to the moment the last client that
/// lost its stream received an event again.
public struct BenchStorm: Sendable {
    /// Attempts after each client's first.
    public var reconnects: Int
    /// `503` answers received.
    public var refusals: Int
    /// Connects that failed and were retried.
    public var connectFailures: Int
    /// Streams lost (a close after a 200), once per outage.
    public var outages: Int
    /// Clients without an event since they lost their stream, at the end.
    public var unrecovered: Int
    /// `BenchClock.nowMicros` (µs since the epoch) of the first close of a stream, 0 when none closed.
    public var firstDisconnectMicros: Int64
    /// µs since the epoch of the last outage's end, 0 when none ended.
    public var lastRecoveryMicros: Int64
    /// The longest one client waited from its close to its next event, µs.
    public var longestOutageMicros: Int64
    public var timeline: BenchTimeline

    init(_ tally: BenchTally) {
        self.reconnects = tally.reconnects
        self.refusals = tally.refusals
        self.connectFailures = tally.connectFailures
        self.outages = tally.outages
        self.unrecovered = tally.inOutage
        self.firstDisconnectMicros = tally.firstDisconnectMicros
        self.lastRecoveryMicros = tally.lastRecoveryMicros
        self.longestOutageMicros = tally.longestOutageMicros
        self.timeline = tally.timeline
    }

    /// From the first close to the last client's next event, seconds; nil while a client is still out
    /// (or when nothing closed).
    public var fullRecoverySeconds: Double? {
        guard self.unrecovered == 0, self.firstDisconnectMicros > 0, self.lastRecoveryMicros > 0 else { return nil }
        return Double(self.lastRecoveryMicros - self.firstDisconnectMicros) / 1e6
    }

    /// Seconds from the run's start (the timeline's origin) to the first close, nil when none closed.
    public var firstDisconnectSeconds: Double? {
        guard self.firstDisconnectMicros > 0 else { return nil }
        return Double(self.firstDisconnectMicros - self.timeline.originMicros) / 1e6
    }

    var textLines: [String] {
        let opens = self.timeline.peakPerSecond(.opens)
        let connects = self.timeline.peakPerSecond(.connects)
        let refusals = self.timeline.peakPerSecond(.refusals)
        let recovery = self.fullRecoverySeconds.map { String(format: "%.2f s", $0) } ?? "not reached"
        return [
            "reconnects     \(self.reconnects) attempts after the first, \(self.refusals) × 503, \(self.connectFailures) failed connects; \(self.outages) streams lost, \(self.unrecovered) clients without an event since at the end",
            String(
                format:
                    "recovery       full recovery %@ after the first close (%@ s into the run); longest single outage %.2f s",
                recovery,
                self.firstDisconnectSeconds.map { String(format: "%.2f", $0) } ?? "-",
                Double(self.longestOutageMicros) / 1e6
            ),
            String(
                format:
                    "peak rates     in any 1 s: %d streams opened (200 heads; at %.1f s), %d connects, %d × 503; most opens in 100 ms: %d",
                opens.count,
                opens.atSeconds,
                connects.count,
                refusals.count,
                self.timeline.peakPerBucket(.opens)
            ),
        ]
    }

    var jsonFields: [(String, String)] {
        let series = BenchTimeline.Kind.allCases.map { kind in
            "\"\(kind)\":[" + self.timeline.perSecond(kind).map(String.init).joined(separator: ",") + "]"
        }
        return [
            ("reconnects", String(self.reconnects)),
            ("refusals_503", String(self.refusals)),
            ("connect_failures", String(self.connectFailures)),
            ("outages", String(self.outages)),
            ("unrecovered", String(self.unrecovered)),
            ("full_recovery_s", self.fullRecoverySeconds.map { String(format: "%.3f", $0) } ?? "null"),
            ("longest_outage_s", String(format: "%.3f", Double(self.longestOutageMicros) / 1e6)),
            ("first_disconnect_unix_ms", String(self.firstDisconnectMicros / 1000)),
            ("last_recovery_unix_ms", String(self.lastRecoveryMicros / 1000)),
            ("run_start_unix_ms", String(self.timeline.originMicros / 1000)),
            ("peak_opens_per_s", String(self.timeline.peakPerSecond(.opens).count)),
            ("peak_opens_at_s", String(format: "%.1f", self.timeline.peakPerSecond(.opens).atSeconds)),
            ("peak_opens_per_100ms", String(self.timeline.peakPerBucket(.opens))),
            ("peak_connects_per_s", String(self.timeline.peakPerSecond(.connects).count)),
            ("peak_refusals_per_s", String(self.timeline.peakPerSecond(.refusals).count)),
            ("per_second", "{" + series.joined(separator: ",") + "}"),
        ]
    }
}
