import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SSEBench
import XCTest

@testable import SSEGateTestSupport

/// Issue 14, item 7 at a small scale (bench/crash-storm.sh runs 10,000 clients): HAProxy with `balance
/// first` puts every client on replica1; replica1 is SIGKILLed; all its clients come back at once
/// (EventSource-like `ssegate bench --reconnect` clients, after their jittered `retry:`), and replica2
/// takes them at its `new_connections_per_second`, answering the rest `503` with a `Retry-After`. Every
/// client must resume from its `Last-Event-ID` with no gap and no duplicate, and no second may see more
/// streams opened than the token bucket allows: its burst (one second's worth) plus one second's refill.
final class CrashStormTests: XCTestCase {
    private static let clients = 200
    /// Each replica's `limits.new_connections_per_second`: the storm (200 at once) is over twice it.
    private static let rate = 70
    /// Origin events per second.
    private static let events = 20

    private var group: MultiThreadedEventLoopGroup!
    private var cluster: ClusterProcess?

    override func setUp() async throws {
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() async throws {
        self.cluster?.stop()
        self.cluster = nil
        try await self.group.shutdownGracefully()
    }

    func testTheOtherReplicaTakesEveryClientBackAtItsConnectionRateWithNoGapAndNoDuplicate() async throws {
        _ = try ExternalTool.haproxy.require()
        let cluster = try await ClusterProcess.start(
            group: self.group,
            rate: Self.events,
            retry: "300ms",
            shutdownTimeout: "1s",
            checkInterval: "200ms",
            newConnectionsPerSecond: Self.rate,
            balance: "first"
        )
        self.cluster = cluster
        let (replica1, replica2) = (cluster.ports.admins[0], cluster.ports.admins[1])

        var options = BenchOptions(url: "http://127.0.0.1:\(cluster.ports.balancer)/prices")
        options.clients = Self.clients
        options.mode = BenchClientMode(reconnect: true)
        options.connectConcurrency = 50
        options.headWait = 15
        options.duration = 10
        let bench = Task { try await BenchRunner.run(options) }

        // The ramp itself goes through replica1's limit (503s, Retry-After); then every client is there.
        let group = self.group!
        do {
            try await eventually("\(Self.clients) clients on replica1", timeout: .seconds(15)) {
                await Self.metric("ssegate_connected_clients", port: replica1, group: group) == Self.clients
            }
        } catch {
            bench.cancel()
            XCTFail("\(cluster.logs())")
            throw error
        }
        let sampler = AcceptedSampler(port: replica2, group: group)
        let sampling = Task { await sampler.run() }
        try await Task.sleep(nanoseconds: 300_000_000)
        let killedMicros = Int64(Date().timeIntervalSince1970 * 1e6)
        cluster.signal("replica1", SIGKILL)

        let report = try await bench.value
        sampling.cancel()
        _ = await sampling.value
        let storm = try XCTUnwrap(report.storm, report.text)
        let context = "\(report.text)\n\(cluster.logs())"

        // Exactly once, in order, for every client, across the crash.
        XCTAssertEqual(report.missing, 0, context)
        XCTAssertEqual(report.duplicates, 0, context)
        XCTAssertEqual(report.badStatus, 0, "only 503s (the limit's), no 502 from HAProxy: \(context)")
        XCTAssertEqual(report.connected, Self.clients, context)
        XCTAssertEqual(storm.outages, Self.clients, "every client lost its stream once: \(context)")
        XCTAssertEqual(storm.unrecovered, 0, context)
        // Recorded, not bounded: how long depends on when the 503s' Retry-After (1 or 2 s) bring them back.
        let recovery = try XCTUnwrap(storm.fullRecoverySeconds, context)

        // After the kill: every client opened a stream again, some only after a 503, and no second saw more
        // than the bucket's burst plus a second's refill: at replica2 (10 % slack for the 100 ms samples),
        // and at the client (50 %: a load client that falls behind reads heads sent over a longer span
        // in one go).
        let bound = 2 * Self.rate + Self.rate / 10
        let clientBound = 2 * Self.rate + Self.rate / 2
        let killBucket = Int((killedMicros - storm.timeline.originMicros) / BenchTimeline.bucketMicros)
        let opensAfter = storm.timeline.buckets(.opens).dropFirst(killBucket)
        XCTAssertEqual(opensAfter.reduce(0, +), Self.clients, context)
        XCTAssertGreaterThan(storm.timeline.buckets(.refusals).dropFirst(killBucket).reduce(0, +), 0, context)
        XCTAssertLessThanOrEqual(storm.timeline.peakPerSecond(.opens).count, clientBound, context)
        // The same seen by replica2: its accepted connections in any second (sampled every 100 ms).
        let samples = await sampler.samples
        let accepted = (samples.last?.count ?? 0) - (samples.first?.count ?? 0)
        XCTAssertGreaterThanOrEqual(accepted, Self.clients, "replica2 took every client: \(samples)")
        let peak = AcceptedSampler.peakPerSecond(samples)
        XCTAssertGreaterThan(peak, 0)
        XCTAssertLessThanOrEqual(peak, bound, "replica2's accepted connections in any second: \(samples)")
        print(
            "crash storm: \(Self.clients) clients, limit \(Self.rate)/s: full recovery \(String(format: "%.2f", recovery)) s, peak opens/s \(storm.timeline.peakPerSecond(.opens).count) (client), \(peak) (replica2), \(storm.refusals) × 503"
        )
    }

    /// The value of an unlabelled metric in the replica's `/metrics`, nil when it cannot be read.
    static func metric(_ name: String, port: Int, group: EventLoopGroup) async -> Int? {
        guard let text = await CommandLineTests.ask("GET /metrics", port: port, group: group)?.response else {
            return nil
        }
        let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }.map { Int($0) }
    }
}

/// Reads a replica's `ssegate_connections_accepted_total` every 100 ms until cancelled.
private actor AcceptedSampler {
    struct Sample: CustomStringConvertible {
        var seconds: Double
        var count: Int
        var description: String { String(format: "%.1f:%d", self.seconds, self.count) }
    }

    private let port: Int
    private let group: EventLoopGroup
    private(set) var samples: [Sample] = []

    init(port: Int, group: EventLoopGroup) {
        self.port = port
        self.group = group
    }

    func run() async {
        let start = Date()
        while !Task.isCancelled {
            if let count = await CrashStormTests.metric(
                "ssegate_connections_accepted_total",
                port: self.port,
                group: self.group
            ) {
                self.samples.append(Sample(seconds: Date().timeIntervalSince(start), count: count))
            }
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
    }

    /// The most accepted between two samples at most one second apart.
    static func peakPerSecond(_ samples: [Sample]) -> Int {
        var peak = 0
        for (index, first) in samples.enumerated() {
            for later in samples[index...] where later.seconds - first.seconds <= 1.0 {
                peak = max(peak, later.count - first.count)
            }
        }
        return peak
    }
}
