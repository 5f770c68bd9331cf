import Foundation
import NIOCore
import NIOPosix
import XCTest

@testable import SSEGateTestSupport

/// SPEC §7: replicas are interchangeable. The topology of docker-compose.yml, run without Docker by
/// `scripts/cluster.sh` on 127.0.0.1: the demo origin (`ssegate origin`), two replicas (`ssegate serve`) and
/// HAProxy (the Debian package) in front, health-checking each replica's `/readyz`. A hundred reconnecting
/// clients (EventSource-like: after a close they wait `retry:` and resume with `Last-Event-ID`) stream
/// through HAProxy; one replica is killed or drained; every client must end up on the other replica having
/// received every event exactly once.
final class ClusterFailoverTests: XCTestCase {
    private static let clientCount = 100
    /// Origin events per second.
    private static let rate = 20

    private var group: MultiThreadedEventLoopGroup!
    private var cluster: ClusterProcess?
    private var clients: [ClusterEventSource] = []

    override func setUp() async throws {
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    }

    override func tearDown() async throws {
        for client in self.clients { await client.stop() }
        self.clients.removeAll()
        self.cluster?.stop()
        self.cluster = nil
        try await self.group.shutdownGracefully()
    }

    /// SIGKILL: an abrupt crash. The killed replica's clients see their connections cut, reconnect through
    /// HAProxy and resume from the other replica's replay buffer. The health check is slow here (2s), so
    /// the reconnects usually arrive while HAProxy still counts the dead replica as up: it must retry the
    /// refused connections on the other one (`retries`, `option redispatch`) rather than fail them.
    func testEveryClientResumesOnTheOtherReplicaWhenOneCrashes() async throws {
        let cluster = try await self.startCluster(shutdownTimeout: "2s", checkInterval: "2s")
        let victims = try await self.connectClientsAcrossBothReplicas(cluster)

        cluster.signal("replica1", SIGKILL)
        try await eventually("replica1 gone", timeout: .seconds(3)) { !cluster.isRunning("replica1") }
        try await self.waitUntilEveryClientIsLiveOn("replica2", cluster)

        await self.stopClients()
        self.verifyExactlyOnce(cluster)
        for client in victims {
            let connections = client.snapshot.connections
            XCTAssertGreaterThanOrEqual(
                connections.count,
                2,
                "a client of the killed replica reconnected: \(connections)"
            )
            XCTAssertEqual(connections.last?.replica, "replica2", "\(connections)")
            XCTAssertNotNil(connections.last?.resumeFrom, "it resumed with Last-Event-ID: \(connections)")
        }
    }

    /// SIGTERM: a graceful drain. readyz turns 503 (HAProxy takes the replica out), each client gets a
    /// jittered `retry:` and is closed at a random moment of the drain window, and resumes on the other one.
    func testEveryClientResumesOnTheOtherReplicaWhenOneDrains() async throws {
        let cluster = try await self.startCluster(shutdownTimeout: "2s")
        let victims = try await self.connectClientsAcrossBothReplicas(cluster)

        let signalled = Date()
        cluster.signal("replica1", SIGTERM)
        try await eventually("replica1 exits after its drain", timeout: .seconds(8)) { !cluster.isRunning("replica1") }
        XCTAssertLessThan(
            Date().timeIntervalSince(signalled),
            6,
            "exit within shutdown_timeout (2s) plus a loaded machine's slack"
        )
        try await self.waitUntilEveryClientIsLiveOn("replica2", cluster)

        await self.stopClients()
        self.verifyExactlyOnce(cluster)
        var drainRetries = Set<Int>()
        for client in victims {
            let connections = client.snapshot.connections
            let drained = connections.first { $0.replica == "replica1" && $0.endedBy != nil }
            XCTAssertNotNil(drained, "\(connections)")
            // The stream's own retry: first (200 ms plus up to the default retry_jitter of 50 %), then the
            // drain's jittered one.
            XCTAssertTrue((200...300).contains(drained?.retries.first ?? 0), "\(connections)")
            XCTAssertEqual(drained?.retries.count, 2, "the drain sends a retry: before closing: \(connections)")
            if let last = drained?.retries.last { drainRetries.insert(last) }
            XCTAssertEqual(connections.last?.replica, "replica2", "\(connections)")
            XCTAssertNotNil(connections.last?.resumeFrom, "\(connections)")
        }
        XCTAssertGreaterThan(drainRetries.count, 3, "drain retry values are jittered: \(drainRetries.sorted())")
    }

    /// HAProxy sends PROXY v2 (`send-proxy-v2`) and the replica's listener reads it (`proxy_protocol: true`):
    /// the replica counts streams per real client address, not per HAProxy's. With one replica and
    /// `max_clients_per_address: 1`, a second stream from 127.0.0.2 is refused while one from 127.0.0.3 is
    /// served; through a balancer that hid the clients, all three would share 127.0.0.1 and the third would
    /// be refused too.
    func testTheReplicaSeesEachClientsOwnAddressThroughHAProxy() async throws {
        _ = try ExternalTool.haproxy.require()
        let cluster = try await ClusterProcess.start(
            group: self.group,
            replicas: 1,
            rate: Self.rate,
            retry: "200ms",
            shutdownTimeout: "2s",
            maxClientsPerAddress: 1
        )
        self.cluster = cluster
        let port = cluster.ports.balancer
        let request = "GET /prices HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        var connections: [RawConnection] = []
        defer { for connection in connections { connection.close() } }
        for from in ["127.0.0.2", "127.0.0.2", "127.0.0.3"] {
            let connection = try await RawConnection.connect(port: port, group: self.group, from: from)
            connections.append(connection)
            try await connection.send(request)
            try await connection.wait("a response head for \(from)") { text, _ in text.contains("\r\n\r\n") }
        }
        let statuses = connections.map { String($0.text.prefix(12)) }
        XCTAssertEqual(
            statuses,
            ["HTTP/1.1 200", "HTTP/1.1 503", "HTTP/1.1 200"],
            "\(connections.map { $0.text.prefix(300) })\n\(cluster.logs())"
        )
        XCTAssertTrue(connections[1].text.contains("too many streams from this address"), connections[1].text)
        try await connections[2].wait("events for 127.0.0.3") { text, _ in text.contains("data:") }
    }

    /// The docker-compose files cannot run here (no Docker engine), but their configs can be checked: the
    /// replicas' ssegate config, HAProxy's (service names need not resolve: `init-addr ... none`), and
    /// every file docker-compose.yml mounts exists.
    func testComposeConfigsAreValid() throws {
        let root = ClusterProcess.repositoryRoot
        let check = try Self.run(
            CommandLineTests.binary().path,
            ["check", "--config", root.appendingPathComponent("config/replica.yaml").path]
        )
        XCTAssertEqual(check.status, 0, "config/replica.yaml: \(check.output)")
        let haproxy = try ExternalTool.haproxy.require()
        let haproxyCheck = try Self.run(haproxy, ["-c", "-f", root.appendingPathComponent("config/haproxy.cfg").path])
        XCTAssertEqual(haproxyCheck.status, 0, "config/haproxy.cfg: \(haproxyCheck.output)")
        XCTAssertTrue(haproxyCheck.output.contains("Configuration file is valid"), haproxyCheck.output)

        let compose = try String(contentsOf: root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        let mounted = compose.split(separator: "\n").compactMap { line -> String? in
            guard let start = line.range(of: "- ./") else { return nil }
            return String(line[start.upperBound...].prefix { $0 != ":" })
        }
        XCTAssertTrue(mounted.contains("config/haproxy.cfg") && mounted.contains("config/replica.yaml"), "\(mounted)")
        for path in mounted {
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path),
                "docker-compose.yml mounts \(path), which does not exist"
            )
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent("Dockerfile").path))
    }

    private static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    // MARK: Steps

    /// Starts the cluster script (HAProxy in front of the replicas; skipped when haproxy is not installed).
    private func startCluster(shutdownTimeout: String, checkInterval: String = "200ms") async throws -> ClusterProcess {
        _ = try ExternalTool.haproxy.require()
        let cluster = try await ClusterProcess.start(
            group: self.group,
            rate: Self.rate,
            retry: "200ms",
            shutdownTimeout: shutdownTimeout,
            checkInterval: checkInterval
        )
        self.cluster = cluster
        return cluster
    }

    /// Connects the clients through HAProxy, waits until every one streams, and returns those on replica1.
    private func connectClientsAcrossBothReplicas(_ cluster: ClusterProcess) async throws -> [ClusterEventSource] {
        for _ in 0..<Self.clientCount {
            let client = ClusterEventSource(port: cluster.ports.balancer, path: "/prices", group: self.group)
            self.clients.append(client)
            client.start()
        }
        let clients = self.clients
        try await eventually("\(Self.clientCount) clients streaming through HAProxy", timeout: .seconds(10)) {
            clients.allSatisfy { $0.eventCount >= 5 }
        }
        let byReplica = Dictionary(grouping: clients) { $0.currentReplica ?? "none" }
        XCTAssertEqual(
            Set(byReplica.keys),
            ["replica1", "replica2"],
            "leastconn spreads the clients over both replicas"
        )
        let victims = byReplica["replica1"] ?? []
        XCTAssertGreaterThan(
            victims.count,
            Self.clientCount / 4,
            "replica1 has its share: \(byReplica.mapValues(\.count))"
        )
        XCTAssertGreaterThan(
            byReplica["replica2"]?.count ?? 0,
            Self.clientCount / 4,
            "replica2 has its share: \(byReplica.mapValues(\.count))"
        )
        return victims
    }

    /// Waits until every client is connected to `replica` and has received events a second beyond the
    /// newest one any client had when the wait began (so each is live again, not just reconnected).
    private func waitUntilEveryClientIsLiveOn(_ replica: String, _ cluster: ClusterProcess) async throws {
        let clients = self.clients
        let newest = clients.compactMap { $0.snapshot.ids.last.flatMap(Int.init) }.max() ?? 0
        let target = newest + Self.rate
        do {
            try await eventually("every client live on \(replica) past id \(target)", timeout: .seconds(10)) {
                clients.allSatisfy { client in
                    let state = client.snapshot
                    return state.connections.last?.replica == replica && state.connections.last?.endedBy == nil
                        && (state.ids.last.flatMap(Int.init) ?? 0) >= target
                }
            }
        } catch {
            let stragglers = clients.filter {
                ($0.snapshot.ids.last.flatMap(Int.init) ?? 0) < target || $0.currentReplica != replica
            }
            XCTFail(
                "\(stragglers.count) clients not live on \(replica): \(stragglers.prefix(3).map { $0.snapshot.connections })\n\(cluster.logs())"
            )
            throw error
        }
    }

    private func stopClients() async {
        for client in self.clients { await client.stop() }
    }

    /// Every client's ids run consecutively from its first to its last: no gap, no duplicate, across every
    /// reconnect; and no request failed.
    private func verifyExactlyOnce(_ cluster: ClusterProcess, file: StaticString = #filePath, line: UInt = #line) {
        var problems: [String] = []
        for (index, client) in self.clients.enumerated() {
            let state = client.snapshot
            if !state.failures.isEmpty {
                problems.append("client \(index): failed requests \(state.failures)")
            }
            let ids = state.ids.compactMap(Int.init)
            if ids.count != state.ids.count {
                problems.append("client \(index): non-numeric ids")
                continue
            }
            var duplicates: [Int] = []
            var gaps: [ClosedRange<Int>] = []
            for (previous, next) in zip(ids, ids.dropFirst()) where next != previous + 1 {
                if next <= previous {
                    duplicates.append(next)
                } else {
                    gaps.append((previous + 1)...(next - 1))
                }
            }
            if !duplicates.isEmpty || !gaps.isEmpty {
                problems.append(
                    "client \(index): duplicates \(duplicates.prefix(10)), missing \(gaps.prefix(5)) over \(state.connections)"
                )
            }
        }
        if !problems.isEmpty {
            XCTFail(
                "\(problems.count) of \(self.clients.count) clients did not get every event exactly once:\n"
                    + problems.prefix(5).joined(separator: "\n") + "\n\(cluster.logs())",
                file: file,
                line: line
            )
        }
        let events = self.clients.map { $0.snapshot.ids.count }
        XCTAssertGreaterThan(
            events.min() ?? 0,
            Self.rate,
            "every client streamed for more than a second: \(events.min() ?? 0)",
            file: file,
            line: line
        )
    }
}
