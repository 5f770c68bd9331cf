import Foundation
import NIOCore
import NIOPosix
import SSEOrigin
import XCTest

@testable import SSEGateTestSupport

/// Issue 16 finding 3 with the real binary: a gateway with an `on_demand` feed is drained (SIGTERM,
/// clients closed at spread moments, so they hold different last ids) and started again on the same
/// port; every EventSource-like client resumes and must have every event exactly once.
/// `SSEGATE_RESTART_CLIENTS` sets the number of clients (200 by default; the issue measured 2,000) and
/// `SSEGATE_RESTART_RATE` the origin's events per second (50).
final class RestartDrainTests: XCTestCase {
    private static let rate = ProcessInfo.processInfo.environment["SSEGATE_RESTART_RATE"].flatMap(Int.init) ?? 50

    func testEveryClientResumesWithNoGapAfterAGracefulRestart() async throws {
        let clientCount = ProcessInfo.processInfo.environment["SSEGATE_RESTART_CLIENTS"].flatMap(Int.init) ?? 200
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var options = OriginServer.Options()
        options.rate = Double(Self.rate)
        let origin = OriginServer(options: options, group: group)
        try await origin.start()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ssegate-restart-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let port = try await CommandLineTests.freePort(group: group)
        let adminPort = try await CommandLineTests.freePort(group: group)
        let config = directory.appendingPathComponent("gateway.yaml")
        try """
        log_level: warning
        shutdown_timeout: 2s
        listen:
          - address: 127.0.0.1:\(port)
        admin:
          address: 127.0.0.1:\(adminPort)
        limits: { max_clients: 20000 }
        defaults:
          retry: 200ms
          upstream: { backoff: { initial: 20ms, max: 200ms } }
        feeds:
          - path: /prices
            connect: on_demand
            upstream:
              url: http://127.0.0.1:\(origin.port)/prices

        """.write(to: config, atomically: true, encoding: .utf8)
        let binary = try CommandLineTests.binary().path
        var gateways: [pid_t] = []
        var clients: [ClusterEventSource] = []
        func launchGateway(_ name: String) throws -> pid_t {
            let pid = try ClusterProcess.spawn(
                binary,
                ["serve", "--config", config.path],
                environment: ProcessInfo.processInfo.environment,
                output: directory.appendingPathComponent("\(name).log").path
            )
            gateways.append(pid)
            return pid
        }
        defer {
            for pid in gateways where ClusterProcess.isAlive(pid) { kill(pid, SIGKILL) }
            try? FileManager.default.removeItem(at: directory)
        }

        let first = try launchGateway("first")
        try await eventually("first gateway listening") {
            (try? await rawExchange(port: port, "", group: group, timeout: .milliseconds(1))) != nil
        }
        for index in 0..<clientCount {
            let client = ClusterEventSource(port: port, path: "/prices", group: group, initialRetryMilliseconds: 200)
            clients.append(client)
            client.start()
            if index % 100 == 99 { try await Task.sleep(for: .milliseconds(50)) }  // a ramp, not a SYN flood
        }
        do {
            try await eventually("\(clientCount) clients streaming", timeout: .seconds(30)) {
                clients.allSatisfy { $0.eventCount >= 5 }
            }
        } catch {
            let behind = clients.filter { $0.eventCount < 5 }
            XCTFail(
                "\(behind.count) clients not streaming, e.g. \(behind.first.map { "\($0.snapshot.failures.suffix(2)) \($0.snapshot.connections.suffix(2))" } ?? "")"
            )
            for client in clients { await client.stop() }
            throw error
        }

        kill(first, SIGTERM)
        try await eventually("the first gateway drains and exits", timeout: .seconds(10)) {
            var status: Int32 = 0
            return waitpid(first, &status, WNOHANG) == first
        }
        _ = try launchGateway("second")

        let newest = clients.compactMap { $0.snapshot.ids.last.flatMap(Int.init) }.max() ?? 0
        let target = newest + 2 * Self.rate
        do {
            try await eventually(
                "every client live again past id \(target)",
                timeout: .seconds(Int64(20 + clientCount / 40))
            ) {
                clients.allSatisfy { ($0.snapshot.ids.last.flatMap(Int.init) ?? 0) >= target }
            }
        } catch {
            let behind = clients.filter { ($0.snapshot.ids.last.flatMap(Int.init) ?? 0) < target }
            let feeds = try? await rawExchange(
                port: adminPort,
                "GET /api/feeds HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                group: group,
                timeout: .seconds(2)
            )
            XCTFail(
                "\(behind.count) clients behind, e.g. \(behind.first.map { "\($0.snapshot.failures.suffix(2)) \($0.snapshot.connections.suffix(2))" } ?? ""); \(feeds?.response.suffix(1500) ?? "")"
            )
            for client in clients { await client.stop() }
            throw error
        }
        for client in clients { await client.stop() }

        var lost = 0
        var clientsWithLoss = 0
        var duplicates = 0
        var example = ""
        var duplicateExample = ""
        for client in clients {
            let ids = client.snapshot.ids.compactMap(Int.init)
            var missing = 0
            var where_ = ""
            for (previous, next) in zip(ids, ids.dropFirst()) {
                if next > previous + 1 {
                    missing += next - previous - 1
                    where_ += " \(previous)→\(next)"
                }
                if next <= previous {
                    duplicates += 1
                    if duplicateExample.isEmpty {
                        let connections = client.snapshot.connections.filter { !$0.ids.isEmpty || $0.status != nil }
                        duplicateExample = "\(previous)→\(next) in \(connections)"
                    }
                }
            }
            if missing > 0 {
                clientsWithLoss += 1
                if example.isEmpty {
                    let connections = client.snapshot.connections.filter { !$0.ids.isEmpty || $0.status != nil }
                    example = "gaps\(where_) in \(connections)"
                }
            }
            lost += missing
        }
        print("restart-drain: \(clientCount) clients, \(clientsWithLoss) lost \(lost) events, \(duplicates) duplicates")
        XCTAssertEqual(lost, 0, "\(clientsWithLoss) of \(clientCount) clients lost \(lost) events, e.g. \(example)")
        XCTAssertEqual(duplicates, 0, "e.g. \(duplicateExample)")
        try await origin.stop()
        try await group.shutdownGracefully()
    }
}
