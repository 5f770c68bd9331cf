import Foundation
import NIOCore
import NIOPosix
import XCTest

@testable import SSEGateTestSupport

/// `scripts/cluster.sh run` on free ports in a temporary state folder: the demo origin, two ssegate
/// replicas and HAProxy, exactly as a user starts them without Docker. The script writes one pid file per
/// component; a test signals a replica by that pid, and `stop()` ends the script (which stops its
/// components) and then kills, by pid, whatever is still running.
final class ClusterProcess: @unchecked Sendable {
    struct Ports {
        var origin: Int
        var balancer: Int
        var stats: Int
        var replicas: [Int]
        var admins: [Int]
    }

    let directory: URL
    let ports: Ports
    private let scriptPID: pid_t
    private var scriptExited = false

    static var repositoryRoot: URL {
        // <root>/Tests/SSEGateCLITests/Support/ClusterProcess.swift
        URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Starts the script and waits until every component is ready (HAProxy has both replicas UP).
    /// `maxClientsPerAddress`: each replica's `limits.max_clients_per_address` (0: none);
    /// `newConnectionsPerSecond`: each replica's `limits.new_connections_per_second` (0: none);
    /// `balance`: HAProxy's algorithm (`first`: every client on replica1 while it is up).
    static func start(
        group: EventLoopGroup,
        replicas: Int = 2,
        rate: Int,
        retry: String,
        shutdownTimeout: String,
        checkInterval: String = "200ms",
        maxClientsPerAddress: Int = 0,
        newConnectionsPerSecond: Int = 0,
        balance: String = "leastconn",
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> ClusterProcess {
        var free: [Int] = []
        while free.count < 3 + 2 * replicas {
            let port = try await CommandLineTests.freePort(group: group)
            if !free.contains(port) { free.append(port) }
        }
        let ports = Ports(
            origin: free[0],
            balancer: free[1],
            stats: free[2],
            replicas: Array(free[3..<(3 + replicas)]),
            admins: Array(free[(3 + replicas)...])
        )
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ssegate-cluster-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let logFile = directory.appendingPathComponent("script.log")

        var environment = ProcessInfo.processInfo.environment
        environment["CLUSTER_DIR"] = directory.path
        environment["CLUSTER_HOST"] = "127.0.0.1"
        environment["ORIGIN_PORT"] = "\(ports.origin)"
        environment["LB_PORT"] = "\(ports.balancer)"
        environment["STATS_PORT"] = "\(ports.stats)"
        environment["REPLICA_PORTS"] = ports.replicas.map(String.init).joined(separator: " ")
        environment["ADMIN_PORTS"] = ports.admins.map(String.init).joined(separator: " ")
        environment["RATE"] = "\(rate)"
        environment["RETRY"] = retry
        environment["SHUTDOWN_TIMEOUT"] = shutdownTimeout
        environment["CHECK_INTER"] = checkInterval
        environment["CONNECT_TIMEOUT"] = "500ms"
        environment["MAX_CLIENTS_PER_ADDRESS"] = "\(maxClientsPerAddress)"
        environment["NEW_CONNECTIONS_PER_SECOND"] = "\(newConnectionsPerSecond)"
        environment["BALANCE"] = balance
        environment["SSEGATE_BIN"] = try CommandLineTests.binary(file: file, line: line).path
        if let haproxy = ExternalTool.haproxy.path { environment["HAPROXY_BIN"] = haproxy }
        let script = Self.repositoryRoot.appendingPathComponent("scripts/cluster.sh").path
        let pid = try Self.spawn("/bin/bash", [script, "run"], environment: environment, output: logFile.path)
        let cluster = ClusterProcess(directory: directory, ports: ports, scriptPID: pid)

        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("ready").path) {
            let running = cluster.scriptIsRunning
            if !running || Date() > deadline {
                let why = running ? "not ready after 20s" : "exited"
                XCTFail("scripts/cluster.sh run \(why):\n\(cluster.logs())", file: file, line: line)
                cluster.stop()
                throw TestTimeout(message: "cluster did not start")
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        return cluster
    }

    private init(directory: URL, ports: Ports, scriptPID: pid_t) {
        self.directory = directory
        self.ports = ports
        self.scriptPID = scriptPID
    }

    /// Starts `path` with posix_spawn and a clean signal state. Foundation's `Process` would pass on the
    /// calling thread's signal mask, and a test runs on a Dispatch worker thread that blocks SIGTERM: the
    /// script could then never be stopped by it (nor trap it). stdout and stderr go to `output`.
    static func spawn(
        _ path: String,
        _ arguments: [String],
        environment: [String: String],
        output: String
    ) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard status == 0 else {
            throw TestTimeout(message: "posix_spawn \(path): \(String(cString: strerror(status)))")
        }
        return pid
    }

    /// The script has not exited (reaps it once it has).
    var scriptIsRunning: Bool {
        if self.scriptExited { return false }
        var status: Int32 = 0
        let result = waitpid(self.scriptPID, &status, WNOHANG)
        if result == self.scriptPID || (result < 0 && errno == ECHILD) {
            self.scriptExited = true
            return false
        }
        return true
    }

    /// The pid the script recorded for `name` (origin, replica1, replica2, haproxy).
    func pid(of name: String) -> pid_t? {
        guard let text = try? String(contentsOf: self.directory.appendingPathComponent("\(name).pid"), encoding: .utf8)
        else { return nil }
        return pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func signal(_ name: String, _ signal: Int32, file: StaticString = #filePath, line: UInt = #line) {
        guard let pid = self.pid(of: name), Self.isAlive(pid) else {
            XCTFail("\(name) is not running", file: file, line: line)
            return
        }
        kill(pid, signal)
    }

    /// Running and not a zombie.
    func isRunning(_ name: String) -> Bool {
        guard let pid = self.pid(of: name) else { return false }
        return Self.isAlive(pid)
    }

    static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        return !stat[close...].hasPrefix(") Z")
    }

    /// The script's output and the last lines of each component's log, for failure messages.
    func logs(lines: Int = 15) -> String {
        var text = ""
        for name in ["script", "origin", "replica1", "replica2", "haproxy"] {
            guard
                let content = try? String(
                    contentsOf: self.directory.appendingPathComponent("\(name).log"),
                    encoding: .utf8
                )
            else { continue }
            let tail = content.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(
                separator: "\n"
            )
            text += "--- \(name).log\n\(tail)\n"
        }
        return text
    }

    /// Ends the script (it stops its components, replicas first), then kills by pid anything it left.
    func stop() {
        if self.scriptIsRunning {
            kill(self.scriptPID, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while self.scriptIsRunning, Date() < deadline { usleep(20_000) }
            if self.scriptIsRunning {
                kill(self.scriptPID, SIGKILL)
                while self.scriptIsRunning { usleep(20_000) }
            }
        }
        for name in ["replica1", "replica2", "replica3", "haproxy", "origin"] {
            if let pid = self.pid(of: name), Self.isAlive(pid),
                Self.commandLine(pid).contains(name == "haproxy" ? "haproxy" : "ssegate")
            {
                kill(pid, SIGKILL)
            }
        }
        // SSEGATE_KEEP_CLUSTER=1 keeps the pid files, generated configs and logs for a look afterwards.
        if ProcessInfo.processInfo.environment["SSEGATE_KEEP_CLUSTER"] == nil {
            try? FileManager.default.removeItem(at: self.directory)
        }
    }

    private static func commandLine(_ pid: pid_t) -> String {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return "" }
        return String(decoding: data.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
    }
}
