import Foundation
import NIOCore
import NIOPosix

/// Runs one bench: ramps up the clients with a bounded number of connects in flight, waits for their
/// response heads, measures a clean window (progress once a second), then closes everything and reports.
public enum BenchRunner {
    /// `progress` gets one line per second of the window (nil: none).
    public static func run(
        _ options: BenchOptions,
        progress: (@Sendable (String) -> Void)? = nil
    ) async throws -> BenchReport {
        let target = try options.validated()
        let connector = try BenchConnector(options: options, target: target)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.threads))
        let loops = group.makeIterator().map { ($0, BenchLoopTally()) }
        var connections: [Channel] = []
        let outcome: Result<BenchReport, Error>
        do {
            outcome = .success(
                try await Self.measure(
                    options,
                    connector: connector,
                    loops: loops,
                    connections: &connections,
                    progress: progress
                )
            )
        } catch {
            outcome = .failure(error)
        }
        for connection in connections { connection.close(promise: nil) }
        try? await group.shutdownGracefully()
        return try outcome.get()
    }

    private static func measure(
        _ options: BenchOptions,
        connector: BenchConnector,
        loops: [(EventLoop, BenchLoopTally)],
        connections: inout [Channel],
        progress: (@Sendable (String) -> Void)?
    ) async throws -> BenchReport {
        let started = Date()
        let startedMicros = BenchClock.nowMicros()
        let cpuAtStart = BenchClock.cpuSeconds()
        let ramp = try await Self.rampUp(options, connector: connector, loops: loops, connections: &connections)
        let connectSeconds = Date().timeIntervalSince(started)

        // Wait (briefly) for the response heads, then measure a clean window.
        let headDeadline = Date().addingTimeInterval(options.headWait)
        while Date() < headDeadline, try await Self.collect(loops, reset: false).awaitingHead > 0 {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let before = try await Self.collect(loops, reset: true)
        let windowStart = Date()
        let cpuStart = BenchClock.cpuSeconds()
        let opens = BenchOpens(
            opened: before.opened,
            seconds: before.opened > 0 ? Double(before.lastOpenMicros - startedMicros) / 1e6 : 0,
            latencyMicros: before.openMicros,
            benchCPUSeconds: cpuStart.user + cpuStart.system - cpuAtStart.user - cpuAtStart.system
        )
        var lastEvents = before.events
        var lastPolls = before.polls
        var lastTick = windowStart
        while Date().timeIntervalSince(windowStart) < options.duration {
            let remaining = options.duration - Date().timeIntervalSince(windowStart)
            try await Task.sleep(nanoseconds: UInt64(min(1.0, max(0.01, remaining)) * 1e9))
            guard let progress else { continue }
            let now = try await Self.collect(loops, reset: false)
            let seconds = max(Date().timeIntervalSince(lastTick), 0.001)
            let rate = Double(now.events - lastEvents) / seconds
            let polls =
                options.mode.poll ? String(format: "  polls/s %.0f", Double(now.polls - lastPolls) / seconds) : ""
            let head = String(
                format: "[%5.1fs] connected %d  deliveries/s %.0f",
                Date().timeIntervalSince(windowStart),
                now.connected,
                rate
            )
            let tail = String(
                format: "  disconnects %d  missing %d  no response %d",
                now.disconnects,
                now.missing - before.missing,
                now.noResponse
            )
            progress(head + polls + tail)
            lastEvents = now.events
            lastPolls = now.polls
            lastTick = Date()
        }
        let window = Date().timeIntervalSince(windowStart)
        let after = try await Self.collect(loops, reset: false)
        let cpuEnd = BenchClock.cpuSeconds()
        return BenchReport(
            url: options.url,
            protocolName: options.http2 ? (connector.tls == nil ? "h2c" : "h2") : "http/1.1",
            mode: options.mode,
            clients: options.clients,
            connected: after.connected,
            connectErrors: ramp.failedClients + after.streamOpenErrors,
            firstConnectError: ramp.firstError,
            badStatus: after.badStatus,
            noResponse: before.noResponse,
            protocolErrors: after.protocolErrors,
            disconnects: after.disconnects,
            resets: after.resets,
            missing: after.missing - before.missing,
            duplicates: after.duplicates - before.duplicates,
            missingSamples: after.missingSamples,
            polls: after.polls - before.polls,
            feedDeliveries: after.feedEvents.enumerated().map {
                $0.element - ($0.offset < before.feedEvents.count ? before.feedEvents[$0.offset] : 0)
            },
            unattributed: after.unattributed - before.unattributed,
            window: window,
            connectSeconds: connectSeconds,
            opens: opens,
            deliveries: after.events - before.events,
            bytes: after.bytes - before.bytes,
            latency: after.latencyMicros,
            pollWait: after.pollWaitMicros,
            expectedPerSecond: options.expectedRate.map { $0 * Double(options.clients * options.feedsPerClient) },
            cpuUser: cpuEnd.user - cpuStart.user,
            cpuSystem: cpuEnd.system - cpuStart.system
        )
    }

    /// The connections that could not be opened, in clients, and the first reason.
    private struct RampResult {
        var failedClients = 0
        var firstError: String?
    }

    /// Opens every connection, `connectConcurrency` at a time, spread over the loops. A server that will
    /// not speak HTTP/2 when asked to ends the run at once.
    private static func rampUp(
        _ options: BenchOptions,
        connector: BenchConnector,
        loops: [(EventLoop, BenchLoopTally)],
        connections: inout [Channel]
    ) async throws -> RampResult {
        let perConnection = options.clientsPerConnection
        let count = (options.clients + perConnection - 1) / perConnection
        connections.reserveCapacity(count)
        var result = RampResult()
        var next = 0
        while next < count {
            let batch = next..<min(next + options.connectConcurrency, count)
            let opening = batch.map { index in
                let (loop, tally) = loops[index % loops.count]
                let clients = min(perConnection, options.clients - index * perConnection)
                return (clients, connector.connect(index: index, clients: clients, loop: loop, tally: tally))
            }
            for (clients, future) in opening {
                do {
                    connections.append(try await future.get())
                } catch let error as BenchError where error.kind == .protocolMismatch {
                    throw error
                } catch {
                    result.failedClients += clients
                    result.firstError = result.firstError ?? String(describing: error)
                }
            }
            next = batch.upperBound
        }
        return result
    }

    /// The loops' tallies summed (each read on its own loop); `reset` clears the latency histograms for a new window.
    private static func collect(_ loops: [(EventLoop, BenchLoopTally)], reset: Bool) async throws -> BenchTally {
        var sum = BenchTally()
        for (loop, tally) in loops {
            let part = try await loop.submit { () -> BenchTally in
                let copy = tally.tally
                if reset {
                    tally.tally.latencyMicros.reset()
                    tally.tally.pollWaitMicros.reset()
                }
                return copy
            }.get()
            sum.add(part)
        }
        return sum
    }
}
