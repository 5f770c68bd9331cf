import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SSEGateway
import struct Histogram.Histogram

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load tool: N concurrent SSE clients against a URL; deliveries/s, bytes/s, errors, evictions and latency percentiles.",
        discussion: "Latency is measured from the send timestamp (\"ts\", µs) that `ssegate origin` puts in each event's data."
    )

    @Option(name: .long, help: "The SSE URL (http://host:port/path).")
    var url: String
    @Option(name: .long, help: "Concurrent clients.")
    var clients = 100
    @Option(name: .long, help: "Seconds to measure once all clients are connected.")
    var duration: Double = 10
    @Option(name: .long, help: "Connects in flight at once while ramping up.")
    var connectConcurrency = 256
    @Option(name: .long, help: "Spread clients over source addresses 127.0.0.1 ... 127.0.0.N (needed beyond the ephemeral port range).")
    var sourceAddresses = 1
    @Option(name: .long, help: "Event loop threads of the load tool.")
    var threads = 1
    @Option(name: .long, help: "Events per second the origin sends; with it the report shows expected deliveries.")
    var expectedRate: Double?
    @Flag(name: .long, help: "Ask for gzip (Accept-Encoding) and inflate what arrives.")
    var gzip = false
    @Flag(name: .long, help: "Print one JSON line instead of the text report.")
    var json = false
    @Flag(name: .long, help: "No progress lines.")
    var quiet = false

    func run() async throws {
        let target: UpstreamURL
        do {
            target = try UpstreamURL(parsing: self.url)
        } catch {
            throw CommandFailure.config("ssegate bench: bad --url: \(error.message)")
        }
        guard !target.isTLS else { throw CommandFailure.config("ssegate bench: https is not supported yet; use http") }
        guard self.clients > 0, self.duration > 0, self.sourceAddresses >= 1, self.sourceAddresses <= 254 else {
            throw CommandFailure.config("ssegate bench: --clients and --duration must be positive, --source-addresses 1...254")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, self.threads))
        var loops: [(EventLoop, BenchLoopStats)] = []
        for loop in group.makeIterator() { loops.append((loop, BenchLoopStats())) }
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target.target)
        head.headers.add(name: "Host", value: target.hostHeader)
        head.headers.add(name: "Accept", value: "text/event-stream")
        head.headers.add(name: "Cache-Control", value: "no-cache")
        if self.gzip { head.headers.add(name: "Accept-Encoding", value: "gzip") }
        let gunzip = self.gzip
        let started = Date()
        let cpuStart = BenchClock.cpuSeconds()

        // Ramp up with a bounded number of connects in flight.
        var channels: [Channel] = []
        channels.reserveCapacity(self.clients)
        var connectErrors = 0
        var next = 0
        while next < self.clients {
            let batch = min(self.connectConcurrency, self.clients - next)
            let futures: [EventLoopFuture<Channel>] = (0..<batch).map { offset in
                let index = next + offset
                let (loop, stats) = loops[index % loops.count]
                var bootstrap = ClientBootstrap(group: loop)
                    .connectTimeout(.seconds(10))
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHTTPClientHandlers()
                            try channel.pipeline.syncOperations.addHandler(BenchClientHandler(stats: stats, request: head, gunzip: gunzip))
                        }
                    }
                if self.sourceAddresses > 1 {
                    let source = "127.0.0.\(1 + index % self.sourceAddresses)"
                    if let address = try? SocketAddress(ipAddress: source, port: 0) {
                        bootstrap = bootstrap.bind(to: address)
                    }
                }
                return bootstrap.connect(host: target.host, port: target.port)
            }
            for future in futures {
                do { channels.append(try await future.get()) } catch { connectErrors += 1 }
            }
            next += batch
        }
        let connectSeconds = Date().timeIntervalSince(started)

        // Wait (briefly) for the response heads, then measure a clean window.
        let headDeadline = Date().addingTimeInterval(10)
        while Date() < headDeadline {
            let summary = try await Self.collect(loops, reset: false)
            if summary.connected + summary.badStatus + summary.disconnects >= channels.count { break }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let before = try await Self.collect(loops, reset: true)
        let windowStart = Date()
        let cpuWindowStart = BenchClock.cpuSeconds()
        var lastEvents = before.events
        var lastTick = windowStart
        while Date().timeIntervalSince(windowStart) < self.duration {
            let remaining = self.duration - Date().timeIntervalSince(windowStart)
            try await Task.sleep(nanoseconds: UInt64(min(1.0, max(0.01, remaining)) * 1e9))
            if !self.quiet && !self.json {
                let now = try await Self.collect(loops, reset: false)
                let elapsed = Date().timeIntervalSince(lastTick)
                let rate = Double(now.events - lastEvents) / max(elapsed, 0.001)
                FileHandle.standardError.write(Data(String(
                    format: "[%5.1fs] connected %d  deliveries/s %.0f  disconnects %d  missing %d\n",
                    Date().timeIntervalSince(windowStart), now.connected, rate, now.disconnects, now.missing
                ).utf8))
                lastEvents = now.events
                lastTick = Date()
            }
        }
        let window = Date().timeIntervalSince(windowStart)
        let after = try await Self.collect(loops, reset: false)
        let cpuEnd = BenchClock.cpuSeconds()
        for channel in channels { channel.close(promise: nil) }
        try? await group.shutdownGracefully()

        let report = BenchReport(
            url: self.url, clients: self.clients, connected: after.connected, connectErrors: connectErrors, badStatus: after.badStatus,
            disconnects: after.disconnects, missing: after.missing - before.missing, window: window, connectSeconds: connectSeconds,
            deliveries: after.events - before.events, bytes: after.bytes - before.bytes, latency: after.latency,
            expectedPerSecond: self.expectedRate.map { $0 * Double(self.clients) },
            cpuUser: cpuEnd.user - cpuWindowStart.user, cpuSystem: cpuEnd.system - cpuWindowStart.system,
            cpuTotal: (cpuEnd.user - cpuStart.user) + (cpuEnd.system - cpuStart.system)
        )
        print(self.json ? report.json : report.text)
    }

    struct Summary {
        var connected = 0, badStatus = 0, disconnects = 0, events = 0, bytes = 0, missing = 0
        var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    }

    /// Sums the loops' tallies (on their loops); `reset` clears the latency histograms for a new window.
    static func collect(_ loops: [(EventLoop, BenchLoopStats)], reset: Bool) async throws -> Summary {
        var summary = Summary()
        for (loop, stats) in loops {
            let part = try await loop.submit { () -> (Int, Int, Int, Int, Int, Int, Histogram<UInt64>) in
                let copy = stats.latencyMicros
                if reset { stats.latencyMicros.reset() }
                return (stats.connected, stats.badStatus, stats.disconnects, stats.events, stats.bytes, stats.missing, copy)
            }.get()
            summary.connected += part.0
            summary.badStatus += part.1
            summary.disconnects += part.2
            summary.events += part.3
            summary.bytes += part.4
            summary.missing += part.5
            summary.latency.add(part.6)
        }
        return summary
    }
}

/// The bench result, as text for a person or one JSON line for scripts.
struct BenchReport {
    var url: String
    var clients: Int
    var connected: Int
    var connectErrors: Int
    var badStatus: Int
    var disconnects: Int
    var missing: Int
    var window: Double
    var connectSeconds: Double
    var deliveries: Int
    var bytes: Int
    var latency: Histogram<UInt64>
    var expectedPerSecond: Double?
    var cpuUser: Double
    var cpuSystem: Double
    var cpuTotal: Double

    var deliveriesPerSecond: Double { Double(self.deliveries) / max(self.window, 0.001) }
    var bytesPerSecond: Double { Double(self.bytes) / max(self.window, 0.001) }
    private func ms(_ percentile: Double) -> Double { Double(self.latency.valueAtPercentile(percentile)) / 1000 }
    private var maxMs: Double { Double(self.latency.max) / 1000 }

    var text: String {
        var lines = [
            "url            \(self.url)",
            "clients        \(self.connected) connected of \(self.clients) (ramp-up \(String(format: "%.1f", self.connectSeconds)) s), \(self.connectErrors) connect errors, \(self.badStatus) non-200, \(self.disconnects) disconnects/evictions",
            String(format: "deliveries     %d in %.1f s = %.0f/s", self.deliveries, self.window, self.deliveriesPerSecond),
        ]
        if let expected = self.expectedPerSecond {
            lines.append(String(format: "expected       %.0f/s (%.1f%% achieved)", expected, 100 * self.deliveriesPerSecond / max(expected, 0.001)))
        }
        lines += [
            "missing        \(self.missing) events (gaps in the origin's seq numbers)",
            String(format: "bytes          %.0f/s (%.2f MB/s)", self.bytesPerSecond, self.bytesPerSecond / 1e6),
            String(format: "latency ms     p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (%llu samples)", self.ms(50), self.ms(90), self.ms(99), self.maxMs, self.latency.totalCount),
            String(format: "bench CPU      user %.2f s, system %.2f s in the window (%.0f%% of one core)", self.cpuUser, self.cpuSystem, 100 * (self.cpuUser + self.cpuSystem) / max(self.window, 0.001)),
        ]
        return lines.joined(separator: "\n")
    }

    var json: String {
        var fields: [(String, String)] = [
            ("url", JSONText.string(self.url)), ("clients", String(self.clients)), ("connected", String(self.connected)),
            ("connect_errors", String(self.connectErrors)), ("non_200", String(self.badStatus)), ("disconnects", String(self.disconnects)),
            ("missing", String(self.missing)), ("window_s", String(format: "%.3f", self.window)),
            ("deliveries", String(self.deliveries)), ("deliveries_per_s", String(format: "%.1f", self.deliveriesPerSecond)),
            ("bytes_per_s", String(format: "%.1f", self.bytesPerSecond)),
            ("latency_ms_p50", String(format: "%.3f", self.ms(50))), ("latency_ms_p90", String(format: "%.3f", self.ms(90))),
            ("latency_ms_p99", String(format: "%.3f", self.ms(99))), ("latency_ms_max", String(format: "%.3f", self.maxMs)),
            ("latency_samples", String(self.latency.totalCount)),
            ("bench_cpu_user_s", String(format: "%.3f", self.cpuUser)), ("bench_cpu_system_s", String(format: "%.3f", self.cpuSystem)),
        ]
        if let expected = self.expectedPerSecond { fields.append(("expected_per_s", String(format: "%.1f", expected))) }
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}
