import Foundation
import NIOCore
import NIOPosix

/// Runs one bench: ramps up the clients with a bounded number of connects in flight, waits for their
/// response heads, measures a clean window (progress once a second), then closes everything and reports.
/// Reconnecting clients (`--reconnect`) keep coming back on their own until the end, so the head wait
/// waits for every one to stream, and a storm during the window (a server killed) is measured in full.
public enum BenchRunner {
    /// `progress` gets one line per second of the window (nil: none).
    public static func run(
        _ options: BenchOptions,
        progress: (@Sendable (String) -> Void)? = nil
    ) async throws -> BenchReport {
        let connectors = try options.validatedTargets().map { try BenchConnector(options: options, target: $0) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.threads))
        let startedMicros = BenchClock.nowMicros()
        let loops = group.makeIterator().map { ($0, BenchLoopTally(originMicros: startedMicros)) }
        var connections: [Channel] = []
        var clients: [BenchReconnectingClient] = []
        let outcome: Result<BenchReport, Error>
        do {
            outcome = .success(
                try await Self.measure(
                    options,
                    connectors: connectors,
                    loops: loops,
                    startedMicros: startedMicros,
                    connections: &connections,
                    clients: &clients,
                    progress: progress
                )
            )
        } catch {
            outcome = .failure(error)
        }
        for client in clients { try? await client.loop.submit { client.stop() }.get() }
        for connection in connections { connection.close(promise: nil) }
        try? await group.shutdownGracefully()
        return try outcome.get()
    }

    private static func measure(
        _ options: BenchOptions,
        connectors: [BenchConnector],
        loops: [(EventLoop, BenchLoopTally)],
        startedMicros: Int64,
        connections: inout [Channel],
        clients: inout [BenchReconnectingClient],
        progress: (@Sendable (String) -> Void)?
    ) async throws -> BenchReport {
        let started = Date()
        let cpuAtStart = BenchClock.cpuSeconds()
        let ramp: RampResult
        if options.mode.reconnect {
            ramp = try await Self.startReconnecting(options, connectors: connectors, loops: loops, clients: &clients)
        } else {
            ramp = try await Self.rampUp(options, connectors: connectors, loops: loops, connections: &connections)
        }
        let connectSeconds = Date().timeIntervalSince(started)

        // Wait (briefly) for the response heads (reconnecting clients: for every client to stream, through
        // its refusals and retries), then measure a clean window.
        let headDeadline = Date().addingTimeInterval(options.headWait)
        while Date() < headDeadline {
            let now = try await Self.collect(loops, reset: false)
            let waiting = options.mode.reconnect ? now.connected < options.clients : now.awaitingHead > 0
            guard waiting else { break }
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
            let storm =
                options.mode.reconnect
                ? "  reconnects \(now.reconnects)  503s \(now.refusals)  duplicates \(now.duplicates)  in outage \(now.inOutage)"
                : ""
            progress(head + polls + tail + storm)
            lastEvents = now.events
            lastPolls = now.polls
            lastTick = Date()
        }
        let window = Date().timeIntervalSince(windowStart)
        let after = try await Self.collect(loops, reset: false)
        let cpuEnd = BenchClock.cpuSeconds()
        return BenchReport(
            url: options.url,
            protocolName: options.http2 ? (connectors[0].tls == nil ? "h2c" : "h2") : "http/1.1",
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
            // A reconnecting client's count runs across its whole life: a storm may begin before the window.
            missing: options.mode.reconnect ? after.missing : after.missing - before.missing,
            duplicates: options.mode.reconnect ? after.duplicates : after.duplicates - before.duplicates,
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
            cpuSystem: cpuEnd.system - cpuStart.system,
            storm: options.mode.reconnect ? BenchStorm(after) : nil
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
        connectors: [BenchConnector],
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
                let connector = connectors[index % connectors.count]
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

    /// Starts the reconnecting clients, `connectConcurrency` first attempts at a time, spread over the
    /// loops. Their failures are retried by the clients themselves, so none is counted here.
    private static func startReconnecting(
        _ options: BenchOptions,
        connectors: [BenchConnector],
        loops: [(EventLoop, BenchLoopTally)],
        clients: inout [BenchReconnectingClient]
    ) async throws -> RampResult {
        clients.reserveCapacity(options.clients)
        var next = 0
        while next < options.clients {
            let batch = next..<min(next + options.connectConcurrency, options.clients)
            let started = batch.map { index in
                let (loop, tally) = loops[index % loops.count]
                let client = BenchReconnectingClient(
                    index: index,
                    connector: connectors[index % connectors.count],
                    loop: loop,
                    tally: tally,
                    mode: options.mode
                )
                clients.append(client)
                return client.start()
            }
            for future in started { try await future.get() }
            next = batch.upperBound
        }
        return RampResult()
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
