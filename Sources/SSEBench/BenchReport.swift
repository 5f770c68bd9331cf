import Foundation

import struct Histogram.Histogram

/// The bench result, as text for a person or one JSON line for scripts (bench/run.sh, bench/report.py
/// read the JSON field names; fields are only ever added). Connect errors, non-200, protocol errors,
/// disconnects and stream resets count over the whole run (ramp-up, head wait, window); missing,
/// deliveries, bytes, latency and CPU over the measured window only; `connected` is at the window's end
/// and `noResponse` at its start; the stream opens over ramp-up and head wait.
public struct BenchReport: Sendable {
    public var url: String
    /// `http/1.1`, `h2` (over TLS) or `h2c`.
    public var protocolName: String
    /// Streams, poll clients or multi-feed streams.
    public var mode = BenchClientMode()
    public var clients: Int
    public var connected: Int
    public var connectErrors: Int
    /// The first connect error's reason, when there was one.
    public var firstConnectError: String?
    public var badStatus: Int
    public var noResponse: Int
    public var protocolErrors: Int
    public var disconnects: Int
    public var resets: Int
    public var missing: Int
    /// Events a client got again (per feed on multi-feed streams), in the window.
    public var duplicates = 0
    /// Where the first events went missing, over the whole run (`BenchTally.missingSamples`).
    public var missingSamples: [String] = []
    /// Poll responses read to their end in the window (`--poll`).
    public var polls = 0
    /// Deliveries by feed, in request order, in the window (`--multi`).
    public var feedDeliveries: [Int] = []
    /// Events of a multi-feed stream no composite id tied to one feed, in the window.
    public var unattributed = 0
    public var window: Double
    public var connectSeconds: Double
    /// How fast the streams opened (ramp-up and head wait, before the window).
    public var opens: BenchOpens
    public var deliveries: Int
    public var bytes: Int
    public var latency: Histogram<UInt64>
    /// A later poll's request to its response head, µs, in the window (`--poll`): how long the server
    /// held the polls (near 0: events were waiting, each poll came late).
    public var pollWait = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    public var expectedPerSecond: Double?
    public var cpuUser: Double
    public var cpuSystem: Double
    /// Reconnecting clients (`--reconnect`): their reconnects, refusals, outages and peak rates, over the
    /// whole run (as are `missing` and `duplicates` then).
    public var storm: BenchStorm?

    public var deliveriesPerSecond: Double { Double(self.deliveries) / max(self.window, 0.001) }
    /// Poll requests answered per second: the rate of requests a poll client makes of the server (each one
    /// routed, checked and joined as a new stream would be), over connections kept alive.
    public var pollsPerSecond: Double { Double(self.polls) / max(self.window, 0.001) }
    public var bytesPerSecond: Double { Double(self.bytes) / max(self.window, 0.001) }
    /// The bench's own CPU per delivery in the window, µs.
    public var cpuMicrosPerDelivery: Double { (self.cpuUser + self.cpuSystem) * 1e6 / Double(max(self.deliveries, 1)) }
    private func ms(_ percentile: Double) -> Double { Double(self.latency.valueAtPercentile(percentile)) / 1000 }
    private var maxMs: Double { Double(self.latency.max) / 1000 }
    private func pollWaitMs(_ percentile: Double) -> Double {
        Double(self.pollWait.valueAtPercentile(percentile)) / 1000
    }

    public var text: String {
        var lines = [
            "url            \(self.url) (\(self.protocolName))",
            "clients        \(self.connected) connected of \(self.clients) at the end (ramp-up \(String(format: "%.1f", self.connectSeconds)) s), \(self.noResponse) no response when the window started",
            "whole run      over ramp-up, head wait and window: \(self.connectErrors) connect errors, \(self.badStatus) non-200, \(self.protocolErrors) protocol errors, \(self.disconnects) disconnects/evictions (\(self.resets) stream resets)",
        ]
        if let reason = self.firstConnectError { lines.append("connect error  \(reason)") }
        lines.append(
            String(
                format:
                    "stream opens   %d 200 heads in %.2f s from the first connect = %.0f/s; request to head ms p50 %.2f  p99 %.2f  max %.2f; bench CPU %.2f s",
                self.opens.opened,
                self.opens.seconds,
                self.opens.perSecond,
                self.opens.ms(50),
                self.opens.ms(99),
                self.opens.maxMs,
                self.opens.benchCPUSeconds
            )
        )
        lines.append(
            String(
                format:
                    "deliveries     %d in the %.1f s window = %.0f/s (this line and those below: the measured window only)",
                self.deliveries,
                self.window,
                self.deliveriesPerSecond
            )
        )
        if let expected = self.expectedPerSecond {
            lines.append(
                String(
                    format: "expected       %.0f/s (%.1f%% achieved)",
                    expected,
                    100 * self.deliveriesPerSecond / max(expected, 0.001)
                )
            )
        }
        if self.mode.poll {
            lines.append(
                String(
                    format:
                        "polls          %d responses = %.0f/s (%.2f deliveries per poll), on the connections opened above (keep-alive; closed ones are not reopened); held by the server ms p50 %.2f  p99 %.2f",
                    self.polls,
                    self.pollsPerSecond,
                    Double(self.deliveries) / Double(max(self.polls, 1)),
                    self.pollWaitMs(50),
                    self.pollWaitMs(99)
                )
            )
        }
        if self.mode.multi {
            let feeds = self.feedDeliveries.enumerated().map { "#\($0.offset + 1) \($0.element)" }.joined(
                separator: ", "
            )
            lines.append(
                "feeds          deliveries by feed: \(feeds.isEmpty ? "none" : feeds); \(self.unattributed) tied to no feed"
            )
        }
        if let storm = self.storm { lines += storm.textLines }
        lines += [
            "missing        \(self.missing) events (gaps in the origin's seq numbers\(self.mode.multi ? ", per feed" : "")), \(self.duplicates) duplicates"
        ]
        lines += self.missingSamples.map { "  missing at   \($0)" }
        lines += [
            String(format: "bytes          %.0f/s (%.2f MB/s)", self.bytesPerSecond, self.bytesPerSecond / 1e6),
            String(
                format: "latency ms     p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (%llu samples)",
                self.ms(50),
                self.ms(90),
                self.ms(99),
                self.maxMs,
                self.latency.totalCount
            ),
            String(
                format:
                    "bench CPU      user %.2f s, system %.2f s in the window (%.0f%% of one core, %.2f µs per delivery)",
                self.cpuUser,
                self.cpuSystem,
                100 * (self.cpuUser + self.cpuSystem) / max(self.window, 0.001),
                self.cpuMicrosPerDelivery
            ),
        ]
        return lines.joined(separator: "\n")
    }

    public var json: String {
        var fields: [(String, String)] = [
            ("url", Self.jsonString(self.url)), ("protocol", Self.jsonString(self.protocolName)),
            ("mode", Self.jsonString(self.mode.name)),
            ("clients", String(self.clients)), ("connected", String(self.connected)),
            ("connect_errors", String(self.connectErrors)), ("non_200", String(self.badStatus)),
            ("no_response", String(self.noResponse)),
            ("protocol_errors", String(self.protocolErrors)), ("disconnects", String(self.disconnects)),
            ("stream_resets", String(self.resets)),
            ("missing", String(self.missing)), ("duplicates", String(self.duplicates)),
            ("window_s", String(format: "%.3f", self.window)),
            ("deliveries", String(self.deliveries)),
            ("deliveries_per_s", String(format: "%.1f", self.deliveriesPerSecond)),
            ("bytes_per_s", String(format: "%.1f", self.bytesPerSecond)),
            ("latency_ms_p50", String(format: "%.3f", self.ms(50))),
            ("latency_ms_p90", String(format: "%.3f", self.ms(90))),
            ("latency_ms_p99", String(format: "%.3f", self.ms(99))),
            ("latency_ms_max", String(format: "%.3f", self.maxMs)),
            ("latency_samples", String(self.latency.totalCount)),
            ("bench_cpu_user_s", String(format: "%.3f", self.cpuUser)),
            ("bench_cpu_system_s", String(format: "%.3f", self.cpuSystem)),
            ("bench_cpu_us_per_delivery", String(format: "%.3f", self.cpuMicrosPerDelivery)),
            ("stream_opens", String(self.opens.opened)),
            ("stream_opens_s", String(format: "%.3f", self.opens.seconds)),
            ("stream_opens_per_s", String(format: "%.1f", self.opens.perSecond)),
            ("open_ms_p50", String(format: "%.3f", self.opens.ms(50))),
            ("open_ms_p99", String(format: "%.3f", self.opens.ms(99))),
            ("open_ms_max", String(format: "%.3f", self.opens.maxMs)),
            ("open_bench_cpu_s", String(format: "%.3f", self.opens.benchCPUSeconds)),
        ]
        if self.mode.poll {
            fields.append(("polls", String(self.polls)))
            fields.append(("polls_per_s", String(format: "%.1f", self.pollsPerSecond)))
            fields.append(("poll_wait_ms_p50", String(format: "%.3f", self.pollWaitMs(50))))
            fields.append(("poll_wait_ms_p99", String(format: "%.3f", self.pollWaitMs(99))))
        }
        if self.mode.multi {
            fields.append(("feed_deliveries", "[" + self.feedDeliveries.map(String.init).joined(separator: ",") + "]"))
            fields.append(("unattributed", String(self.unattributed)))
        }
        if let storm = self.storm { fields += storm.jsonFields }
        if let expected = self.expectedPerSecond { fields.append(("expected_per_s", String(format: "%.1f", expected))) }
        if let reason = self.firstConnectError { fields.append(("first_connect_error", Self.jsonString(reason))) }
        if !self.missingSamples.isEmpty {
            fields.append(
                ("missing_samples", "[" + self.missingSamples.map(Self.jsonString).joined(separator: ",") + "]")
            )
        }
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    /// `text` as a JSON string literal (Foundation's escaping; slashes left as they are, as in URLs).
    private static func jsonString(_ text: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        guard let data = try? encoder.encode(text) else { return "null" }
        return String(decoding: data, as: UTF8.self)
    }
}
