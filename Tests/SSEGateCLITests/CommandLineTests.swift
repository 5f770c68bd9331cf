import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import XCTest

@testable import SSEGateTestSupport

/// The `ssegate` executable as a user runs it (SPEC §1): exit codes, `FILE:LINE:COLUMN:` errors, one-line
/// reasons on stderr, `/healthz`, SIGTERM. Runs the built binary with Foundation.Process; every process
/// started here is killed (by its own pid) if it outlives its test.
final class CommandLineTests: XCTestCase {
    private var directory: URL!
    private var started: [Process] = []

    override func setUpWithError() throws {
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ssegate-cli-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        for process in self.started where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        self.started.removeAll()
        try? FileManager.default.removeItem(at: self.directory)
    }

    // MARK: check

    func testCheckAcceptsGoodConfig() async throws {
        let file = try self.write("good.yaml", Self.config(listenPort: 18080, adminPort: 19090))
        let result = try await self.run(["check", "--config", file])
        XCTAssertEqual(result.status, 0, "stderr: \(result.stderr)")
        XCTAssertEqual(result.stderr, "")
        XCTAssertTrue(result.stdout.contains("ok"), result.stdout)
    }

    func testCheckReportsUnknownKeyWithLineAndColumn() async throws {
        let file = try self.write(
            "bad.yaml",
            """
            listen:
              - address: 127.0.0.1:18080
            limits:
              max_clientz: 5
            feeds:
              - path: /prices
                upstream:
                  url: http://127.0.0.1:1/prices

            """
        )
        let result = try await self.run(["check", "--config", file])
        XCTAssertEqual(result.status, 1)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        XCTAssertEqual(lines.count, 1, result.stderr)
        XCTAssertTrue(result.stderr.hasPrefix("\(file):4:3: "), result.stderr)
        XCTAssertTrue(result.stderr.contains("max_clientz"), result.stderr)
        XCTAssertFalse(result.stdout.contains("ok"), result.stdout)
    }

    func testCheckReportsEveryErrorInOrder() async throws {
        let file = try self.write(
            "two.yaml",
            """
            listen:
              - address: 127.0.0.1:18080
            defaults:
              retry: soon
            feeds:
              - path: /prices
                upstream:
                  url: http://127.0.0.1:1/prices
                conect: always

            """
        )
        let result = try await self.run(["check", "--config", file])
        XCTAssertEqual(result.status, 1)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, result.stderr)
        XCTAssertTrue(lines.first?.hasPrefix("\(file):4:10: ") == true, result.stderr)
        XCTAssertTrue(lines.last?.hasPrefix("\(file):9:5: ") == true, result.stderr)
    }

    func testCheckOnMissingFileExits1() async throws {
        let missing = self.directory.appendingPathComponent("missing.yaml").path
        let result = try await self.run(["check", "--config", missing])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.hasPrefix("\(missing):"), result.stderr)
    }

    // MARK: usage and config errors

    func testServeWithBadConfigExits1WithOneLine() async throws {
        let file = try self.write(
            "bad.yaml",
            """
            listen:
              - address: 127.0.0.1:18080
            limits:
              max_clientz: 5
            feeds:
              - path: /prices
                upstream:
                  url: http://127.0.0.1:1/prices

            """
        )
        let result = try await self.run(["serve", "--config", file])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.hasPrefix("\(file):4:3: "), result.stderr)
    }

    /// SPEC §1: "always with a one-line reason on stderr" — also when the file has several problems
    /// (`check` is the command that lists them all).
    func testServeWithSeveralConfigErrorsStillPrintsOneLine() async throws {
        let file = try self.write(
            "bad2.yaml",
            """
            listen:
              - address: 127.0.0.1:18080
            limits:
              max_clientz: 5
              header_timeout: fast
            feeds:
              - path: /prices
                upstream:
                  url: http://127.0.0.1:1/prices

            """
        )
        let result = try await self.run(["serve", "--config", file])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(
            result.stderr.split(separator: "\n").count,
            1,
            "serve must give a one-line reason: \(result.stderr)"
        )
        XCTAssertTrue(result.stderr.hasPrefix("\(file):4:3: "), result.stderr)
    }

    func testUnknownSubcommandExits1() async throws {
        let result = try await self.run(["frobnicate"])
        XCTAssertEqual(result.status, 1, "usage errors exit 1, not ArgumentParser's 64")
        XCTAssertTrue(result.stderr.contains("frobnicate"), result.stderr)
        XCTAssertTrue(result.stderr.hasPrefix("ssegate: "), result.stderr)
    }

    func testUnknownOptionExits1() async throws {
        let result = try await self.run(["serve", "--bogus"])
        XCTAssertEqual(result.status, 1, "usage errors exit 1, not ArgumentParser's 64")
        XCTAssertTrue(result.stderr.contains("--bogus"), result.stderr)
    }

    func testHelpExits0() async throws {
        let result = try await self.run(["--help"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.contains("serve"), result.stdout)
    }

    // MARK: serve

    func testServeOnBoundPortExits2WithOneLineReason() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let blocker = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        do {
            let busyPort = blocker.localAddress!.port!
            let adminPort = try await Self.freePort(group: group)
            let file = try self.write("busy.yaml", Self.config(listenPort: busyPort, adminPort: adminPort))
            let result = try await self.run(["serve", "--config", file])
            XCTAssertEqual(result.status, 2, "stderr: \(result.stderr)")
            let lines = result.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, result.stderr)
            XCTAssertTrue(result.stderr.lowercased().contains("in use"), result.stderr)
        } catch {
            try? await blocker.close()
            try? await group.shutdownGracefully()
            throw error
        }
        try await blocker.close()
        try await group.shutdownGracefully()
    }

    func testServeAnswersHealthzAndExits0OnSIGTERM() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.addTeardownBlock { try? await group.shutdownGracefully() }
        let listenPort = try await Self.freePort(group: group)
        let adminPort = try await Self.freePort(group: group)
        let file = try self.write(
            "serve.yaml",
            Self.config(listenPort: listenPort, adminPort: adminPort, extra: "shutdown_timeout: 1s\n")
        )
        let running = try self.launch(["serve", "--config", file])

        var health = ""
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            XCTAssertTrue(running.process.isRunning, "serve exited early: \(running.stderr)")
            guard running.process.isRunning else { return }
            if let result = try? await rawExchange(
                port: adminPort,
                "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
                group: group,
                timeout: .seconds(1)
            ),
                result.response.hasPrefix("HTTP/1.1 200")
            {
                health = result.response
                break
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        XCTAssertTrue(health.hasPrefix("HTTP/1.1 200"), "no /healthz answer; stderr: \(running.stderr)")

        // A connected client must not hold up the exit.
        let stream = try await RawConnection.connect(port: listenPort, group: group)
        try await stream.send("GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        try await stream.wait("stream head") { text, _ in text.contains("text/event-stream") }

        let signalled = Date()
        running.process.terminate()  // SIGTERM to this pid only
        while running.process.isRunning, Date().timeIntervalSince(signalled) < 5 {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        XCTAssertFalse(running.process.isRunning, "serve did not exit within 5 s of SIGTERM")
        guard !running.process.isRunning else { return }
        XCTAssertEqual(running.process.terminationReason, .exit, "killed by a signal instead of exiting")
        XCTAssertEqual(running.process.terminationStatus, 0, "stderr: \(running.stderr)")
        try await stream.wait("client closed at shutdown", timeout: .seconds(2)) { _, closed in closed }
        stream.close()
    }

    /// `--log-format json`: every stderr line is one JSON object with `ts`, `level`, `label`, `msg` and the
    /// line's metadata as string fields (here the upstream that cannot be reached).
    func testJSONLogFormatWritesOneObjectPerLineWithMetadata() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.addTeardownBlock { try? await group.shutdownGracefully() }
        let file = try self.write(
            "json.yaml",
            Self.config(
                listenPort: try await Self.freePort(group: group),
                adminPort: try await Self.freePort(group: group)
            )
        )
        let running = try self.launch(["serve", "--config", file, "--log-format", "json", "--log-level", "info"])
        try await eventually("the upstream failure is logged", timeout: .seconds(10)) {
            running.stderr.contains("upstream lost")
        }
        _ = try await Self.terminateAndWait(running.process)
        guard !running.process.isRunning else { return }  // (terminationStatus traps on a running process)
        running.drain()
        let lines = running.stderr.split(separator: "\n").filter { !$0.isEmpty }
        XCTAssertGreaterThanOrEqual(lines.count, 3, running.stderr)  // started, upstream lost, draining…
        var lost: [String: Any]?
        for line in lines {
            let object = try XCTUnwrap(
                try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                "not a JSON object: \(line)"
            )
            for key in ["ts", "level", "label", "msg"] {
                XCTAssertNotNil(object[key] as? String, "\(key) missing in \(line)")
            }
            if object["msg"] as? String == "upstream lost" { lost = object }
        }
        let upstreamLost = try XCTUnwrap(lost, running.stderr)
        XCTAssertEqual(upstreamLost["level"] as? String, "warning")
        XCTAssertEqual(upstreamLost["feed"] as? String, "/prices")
        XCTAssertEqual(upstreamLost["upstream"] as? String, "http://127.0.0.1:1/prices")
        XCTAssertEqual(running.process.terminationStatus, 0)
    }

    /// A SIGHUP that arrives while the gateway drains must not undo the drain: a reload would bind the
    /// listeners the drain closed (and `reload` and the drain once changed the listener list from two
    /// threads). The reloader stops before the drain begins, and the gateway refuses a reload once
    /// draining; the drain finishes as if no SIGHUP had come.
    func testSIGHUPDuringADrainBindsNothingAndTheDrainFinishes() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.addTeardownBlock { try? await group.shutdownGracefully() }
        let listenPort = try await Self.freePort(group: group)
        let adminPort = try await Self.freePort(group: group)
        let addedPort = try await Self.freePort(group: group)
        let file = try self.write(
            "draining.yaml",
            Self.config(listenPort: listenPort, adminPort: adminPort, extra: "shutdown_timeout: 2s\n")
        )
        let running = try self.launch(["serve", "--config", file, "--log-level", "info"])
        let readyz = { () async -> String? in
            await Self.ask("GET /readyz", port: adminPort, group: group)?.response
        }
        try await eventually("serve is ready", timeout: .seconds(10)) {
            await readyz()?.hasPrefix("HTTP/1.1 200") ?? false
        }
        var clients: [TestSSEClient] = []
        for _ in 0..<8 {
            clients.append(try await TestSSEClient.connect(port: listenPort, path: "/prices", group: group))
        }
        for client in clients { _ = try await client.waitForHead() }

        kill(running.process.processIdentifier, SIGTERM)
        try await eventually("draining", timeout: .seconds(2)) { await readyz()?.hasPrefix("HTTP/1.1 503") ?? false }
        // Mid-drain, a config that adds a listener, and SIGHUP.
        _ = try self.write(
            "draining.yaml",
            Self.config(listenPort: listenPort, adminPort: adminPort, extra: "shutdown_timeout: 2s\n")
                .replacingOccurrences(
                    of: "listen:\n",
                    with: "listen:\n  - address: 127.0.0.1:\(addedPort)\n"
                )
        )
        kill(running.process.processIdentifier, SIGHUP)
        var refused = 0
        while running.process.isRunning, refused < 10 {
            let connected = try? await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: addedPort).get()
            XCTAssertNil(connected, "a listener was bound during the drain")
            try? await connected?.close()
            refused += 1
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        let started = Date()
        while running.process.isRunning, Date().timeIntervalSince(started) < 8 {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        XCTAssertFalse(running.process.isRunning, "serve still running: \(running.stderr)")
        guard !running.process.isRunning else { return }  // (terminationStatus traps on a running process)
        XCTAssertEqual(running.process.terminationStatus, 0, running.stderr)
        XCTAssertTrue(running.stderr.contains("drain finished"), running.stderr)
        XCTAssertFalse(running.stderr.contains("reload applied"), running.stderr)
        XCTAssertFalse(running.stderr.contains("shutdown_timeout passed"), running.stderr)
        for client in clients {
            try await client.waitForClose(timeout: .seconds(3))
            await client.close()
        }
    }

    /// The exit deadline follows a `shutdown_timeout` changed by SIGHUP: raised from 300 ms to 3 s, the
    /// drain spreads its closes over 2.4 s and ends by itself, instead of being cut at 300 ms.
    func testShutdownDeadlineFollowsAReloadedShutdownTimeout() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.addTeardownBlock { try? await group.shutdownGracefully() }
        let listenPort = try await Self.freePort(group: group)
        let adminPort = try await Self.freePort(group: group)
        let file = try self.write(
            "reloaded.yaml",
            Self.config(listenPort: listenPort, adminPort: adminPort, extra: "shutdown_timeout: 300ms\n")
        )
        let running = try self.launch(["serve", "--config", file])
        try await eventually("serve is ready", timeout: .seconds(10)) {
            let answer = await Self.ask("GET /readyz", port: adminPort, group: group)
            return answer?.response.hasPrefix("HTTP/1.1 200") ?? false
        }
        _ = try self.write(
            "reloaded.yaml",
            Self.config(listenPort: listenPort, adminPort: adminPort, extra: "shutdown_timeout: 3s\n")
        )
        kill(running.process.processIdentifier, SIGHUP)
        try await eventually("reload applied", timeout: .seconds(10)) {
            let metrics = await Self.ask("GET /metrics", port: adminPort, group: group)
            return metrics?.response.contains("ssegate_config_reloads_total{result=\"applied\"} 1") ?? false
        }
        var clients: [TestSSEClient] = []
        for _ in 0..<8 {
            clients.append(try await TestSSEClient.connect(port: listenPort, path: "/prices", group: group))
        }
        for client in clients { _ = try await client.waitForHead() }

        let took = try await Self.terminateAndWait(running.process)
        XCTAssertGreaterThan(
            took,
            1.0,
            "8 closes spread over 2.4 s end after 1 s (almost surely); the start-up 300 ms cut them short"
        )
        XCTAssertLessThan(
            took,
            6.0,
            "within the reloaded 3 s (and a loaded machine's slack); stderr: \(running.stderr)"
        )
        XCTAssertFalse(running.stderr.contains("shutdown_timeout passed"), running.stderr)
        XCTAssertEqual(running.process.terminationStatus, 0)
        for client in clients { await client.close() }
    }

    /// The process exits within `shutdown_timeout` whatever is still closing: here a thousand clients and
    /// twenty TLS clients that stopped reading, so their connections would each wait NIOSSL's 5 s for a
    /// `close_notify` answer before the event loops could shut down (the old exit came after ~5-6 s).
    func testServeExitsWithinShutdownTimeoutWhateverIsStillClosing() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        self.addTeardownBlock { try? await group.shutdownGracefully() }
        let certificates = try TestCertificates.shared()
        let listenPort = try await Self.freePort(group: group)
        let tlsPort = try await Self.freePort(group: group)
        let adminPort = try await Self.freePort(group: group)
        let config = """
            log_level: error
            shutdown_timeout: 1s
            listen:
              - address: 127.0.0.1:\(listenPort)
              - address: 127.0.0.1:\(tlsPort)
                tls: { certificate: "\(certificates.serverCertificate)", private_key: "\(certificates.serverKey)" }
            admin:
              address: 127.0.0.1:\(adminPort)
            limits: { max_clients: 5000 }
            feeds:
              - path: /prices
                upstream:
                  url: http://127.0.0.1:1/prices

            """
        let running = try self.launch(["serve", "--config", try self.write("drain.yaml", config)])
        try await eventually("serve is ready", timeout: .seconds(10)) {
            let answer = await Self.ask("GET /readyz", port: adminPort, group: group)
            return answer?.response.hasPrefix("HTTP/1.1 200") ?? false
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(certificates.caCertificate)
        var stalled: [TestSSEClient] = []
        for _ in 0..<20 {
            let client = try await TestSSEClient.connect(port: tlsPort, path: "/prices", group: group, tls: tls)
            _ = try await client.waitForHead()
            try await client.stopReading()
            stalled.append(client)
        }
        var plain: [TestSSEClient] = []
        for _ in 0..<1000 {
            plain.append(
                try await TestSSEClient.connect(port: listenPort, path: "/prices", group: group, recordBody: false)
            )
        }
        let clients = plain
        try await eventually("all clients streaming", timeout: .seconds(10)) {
            clients.allSatisfy { $0.snapshot.head != nil }
        }

        let took = try await Self.terminateAndWait(running.process)
        XCTAssertLessThan(
            took,
            1.5,
            "serve took \(took) s to exit with shutdown_timeout: 1s; stderr: \(running.stderr)"
        )
        if !running.process.isRunning {
            XCTAssertEqual(running.process.terminationReason, .exit)
            XCTAssertEqual(running.process.terminationStatus, 0, "stderr: \(running.stderr)")
        }
        for client in stalled + plain { await client.close() }
    }

    // MARK: bench

    /// `ssegate bench --json` against a real `ssegate origin`: one JSON line on stdout with the fields
    /// bench/run.sh reads, progress lines on stderr (only --quiet silences them).
    func testBenchAgainstOriginPrintsOneJSONLine() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.addTeardownBlock { try? await group.shutdownGracefully() }
        let port = try await Self.freePort(group: group)
        let origin = try self.launch(["origin", "--port", String(port), "--rate", "10", "--payload", "100"])
        try await eventually("origin listening") {
            (try? await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get().close()) != nil
        }

        let result = try await self.run(
            [
                "bench", "--url", "http://127.0.0.1:\(port)/feed", "--clients", "20", "--duration", "2",
                "--expected-rate", "10", "--json",
            ],
            timeout: 20
        )
        XCTAssertEqual(result.status, 0, "stderr: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, result.stdout)
        let report = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: Any],
            result.stdout
        )
        for field in [
            "url", "clients", "connected", "connect_errors", "non_200", "no_response", "disconnects", "missing",
            "window_s",
            "deliveries", "deliveries_per_s", "bytes_per_s", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
            "latency_ms_max", "latency_samples", "bench_cpu_user_s", "bench_cpu_system_s", "expected_per_s",
        ] {
            XCTAssertNotNil(report[field], "JSON field \(field) missing: \(result.stdout)")
        }
        XCTAssertEqual(report["connected"] as? Int, 20, result.stdout)
        XCTAssertEqual(report["no_response"] as? Int, 0, result.stdout)
        XCTAssertEqual(report["missing"] as? Int, 0, result.stdout)
        let deliveries = try XCTUnwrap(report["deliveries"] as? Int)
        XCTAssertEqual(Double(deliveries), 20 * 10 * 2, accuracy: 80, result.stdout)
        XCTAssertEqual(report["latency_samples"] as? Int, deliveries, result.stdout)
        XCTAssertTrue(result.stderr.contains("deliveries/s"), "progress on stderr with --json: \(result.stderr)")

        let quiet = try await self.run(
            [
                "bench", "--url", "http://127.0.0.1:\(port)/feed", "--clients", "2", "--duration", "1.5", "--json",
                "--quiet",
            ],
            timeout: 20
        )
        XCTAssertEqual(quiet.status, 0, quiet.stderr)
        XCTAssertEqual(quiet.stderr, "", "--quiet: no progress")
        XCTAssertTrue(quiet.stdout.hasPrefix("{\"url\":"), quiet.stdout)
        origin.process.terminate()
    }

    func testBenchRejectsABadURLWithExit1() async throws {
        let result = try await self.run(["bench", "--url", "ftp://127.0.0.1/feed"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.hasPrefix("ssegate bench: bad --url"), result.stderr)
    }

    // MARK: SIGHUP

    func testSIGHUPReloadsTheCertificateWhileAnOpenStreamContinues() async throws {
        let curl = try ExternalTool.curl.require()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.addTeardownBlock { try? await group.shutdownGracefully() }
        let first = try TestCertificates.make(keyType: .rsa)
        let second = try TestCertificates.make(keyType: .ecdsa)
        let certificate = self.directory.appendingPathComponent("tls.pem").path
        let key = self.directory.appendingPathComponent("tls.key").path
        try self.install(first, certificate: certificate, key: key)
        let listenPort = try await Self.freePort(group: group)
        let tlsPort = try await Self.freePort(group: group)
        let adminPort = try await Self.freePort(group: group)
        let config = """
            log_level: warning
            listen:
              - address: 127.0.0.1:\(listenPort)
              - address: 127.0.0.1:\(tlsPort)
                tls: { certificate: tls.pem, private_key: tls.key }
            admin:
              address: 127.0.0.1:\(adminPort)
            defaults:
              keepalive: 100ms
            feeds:
              - path: /prices
                upstream:
                  url: http://127.0.0.1:1/prices

            """
        let running = try self.launch(["serve", "--config", try self.write("tls.yaml", config)])
        let expectedFirst = try Self.shell("openssl x509 -in '\(first.serverCertificate)' -noout -fingerprint -sha256")
        let expectedSecond = try Self.shell(
            "openssl x509 -in '\(second.serverCertificate)' -noout -fingerprint -sha256"
        )
        XCTAssertNotEqual(expectedFirst, expectedSecond)
        var served = ""
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, !served.contains("Fingerprint") {
            served = (try? Self.servedFingerprint(port: tlsPort)) ?? ""
            if !served.contains("Fingerprint") { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        XCTAssertEqual(served, expectedFirst, "stderr: \(running.stderr)")

        // A stream over TLS (keepalives every 100 ms: the upstream is down) that must outlive the reload.
        let stream = Process()
        stream.executableURL = URL(fileURLWithPath: curl)
        stream.arguments = [
            "-sN", "--max-time", "20", "--cacert", first.caCertificate, "https://localhost:\(tlsPort)/prices",
        ]
        let output = Pipe()
        stream.standardOutput = output
        stream.standardError = FileHandle.nullDevice
        try stream.run()
        self.started.append(stream)
        let received = NIOLockedValueBox("")
        DispatchQueue.global().async {
            while true {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                received.withLockedValue { $0 += String(decoding: chunk, as: UTF8.self) }
            }
        }
        try await eventually("stream over TLS") { received.withLockedValue { $0.contains(": keepalive") } }

        try self.install(second, certificate: certificate, key: key)
        kill(running.process.processIdentifier, SIGHUP)
        try await eventually("new certificate served") {
            (try? Self.servedFingerprint(port: tlsPort)) == expectedSecond
        }
        let before = received.withLockedValue { $0.components(separatedBy: ": keepalive").count }
        try await eventually("the old stream still receives") {
            received.withLockedValue { $0.components(separatedBy: ": keepalive").count } > before + 2
        }
        XCTAssertTrue(stream.isRunning, "the stream opened before the reload is still open")
        XCTAssertTrue(running.process.isRunning, "SIGHUP must not stop the gateway: \(running.stderr)")
        stream.terminate()
    }

    func testSIGHUPRejectsABadConfigKeepsServingAndAppliesAGoodOne() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.addTeardownBlock { try? await group.shutdownGracefully() }
        let listenPort = try await Self.freePort(group: group)
        let adminPort = try await Self.freePort(group: group)
        let file = try self.write("reload.yaml", Self.config(listenPort: listenPort, adminPort: adminPort))
        let running = try self.launch(["serve", "--config", file])
        try await eventually("serving") {
            let answer = await Self.ask("GET /readyz", port: adminPort, group: group)
            return answer?.response.hasPrefix("HTTP/1.1 200") ?? false
        }
        let stream = try await RawConnection.connect(port: listenPort, group: group)
        try await stream.send("GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        try await stream.wait("stream head") { text, _ in text.contains("text/event-stream") }

        // A typo: rejected, logged with FILE:LINE:COLUMN, counted; the old config keeps serving.
        _ = try self.write(
            "reload.yaml",
            Self.config(listenPort: listenPort, adminPort: adminPort, extra: "limits: { max_clientz: 5 }\n")
        )
        kill(running.process.processIdentifier, SIGHUP)
        try await eventually("rejection counted") {
            let metrics = await Self.ask("GET /metrics", port: adminPort, group: group)
            return metrics?.response.contains("ssegate_config_reloads_total{result=\"rejected\"} 1") ?? false
        }
        try await eventually("the rejection is logged with file, line and column") {
            running.stderr.contains("reload rejected")
                && running.stderr.contains("reload.yaml:6:11: unknown key 'max_clientz'")
        }
        XCTAssertTrue(running.process.isRunning)

        // A good change: a feed added; the open stream is untouched.
        let added =
            Self.config(listenPort: listenPort, adminPort: adminPort) + """
                  - path: /news
                    upstream:
                      url: http://127.0.0.1:1/news

                """
        _ = try self.write("reload.yaml", added)
        kill(running.process.processIdentifier, SIGHUP)
        try await eventually("new feed served") {
            let answer = await Self.ask("HEAD /news", port: listenPort, group: group)
            return answer?.response.hasPrefix("HTTP/1.1 200") ?? false
        }
        let metrics = try await rawExchange(
            port: adminPort,
            "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            group: group,
            timeout: .seconds(1)
        )
        XCTAssertTrue(metrics.response.contains("ssegate_config_reloads_total{result=\"applied\"} 1"), metrics.response)
        try await stream.wait("the open stream lives on", timeout: .seconds(1)) { _, closed in !closed }
        stream.close()
    }

    /// `reload_on_change: true` with the file mounted as Kubernetes mounts a ConfigMap: the path is a symlink
    /// through `..data`, and an update swaps `..data` to a new folder. No SIGHUP is sent: a bad file is
    /// rejected once (not at every poll) and the old config keeps serving; a good one is applied.
    func testReloadOnChangeFollowsAConfigMapStyleSymlinkSwap() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.addTeardownBlock { try? await group.shutdownGracefully() }
        let listenPort = try await Self.freePort(group: group)
        let adminPort = try await Self.freePort(group: group)
        let watched = "reload_on_change: true\nreload_check_interval: 100ms\n"
        let mount = self.directory.appendingPathComponent("configmap")
        let files = FileManager.default
        try files.createDirectory(at: mount, withIntermediateDirectories: true)
        // Like the kubelet: each version in its own folder, `..data` points at the current one.
        func publish(_ version: String, _ text: String) throws {
            let folder = mount.appendingPathComponent("..\(version)")
            try files.createDirectory(at: folder, withIntermediateDirectories: true)
            try text.write(to: folder.appendingPathComponent("ssegate.yaml"), atomically: true, encoding: .utf8)
            let temporary = mount.appendingPathComponent("..data_tmp").path
            XCTAssertEqual(symlink("..\(version)", temporary), 0)
            XCTAssertEqual(rename(temporary, mount.appendingPathComponent("..data").path), 0)
        }
        try publish("v1", Self.config(listenPort: listenPort, adminPort: adminPort, extra: watched))
        let file = mount.appendingPathComponent("ssegate.yaml").path
        XCTAssertEqual(symlink("..data/ssegate.yaml", file), 0)
        let running = try self.launch(["serve", "--config", file])
        func metrics() async -> String {
            await Self.ask("GET /metrics", port: adminPort, group: group)?.response ?? ""
        }
        try await eventually("serving") { await metrics().contains("ssegate_config_reloads_total") }

        try publish(
            "v2",
            Self.config(listenPort: listenPort, adminPort: adminPort, extra: watched + "limits: { max_clientz: 5 }\n")
        )
        try await eventually("the bad file is rejected without a SIGHUP") {
            await metrics().contains("ssegate_config_reloads_total{result=\"rejected\"} 1")
        }
        // Ten more polls of the same bad text: still one rejection.
        try await Task.sleep(nanoseconds: 1_000_000_000)
        let afterPolls = await metrics()
        XCTAssertTrue(afterPolls.contains("ssegate_config_reloads_total{result=\"rejected\"} 1"), afterPolls)
        XCTAssertTrue(running.stderr.contains("unknown key 'max_clientz'"), running.stderr)

        let added =
            Self.config(listenPort: listenPort, adminPort: adminPort, extra: watched) + """
                  - path: /news
                    upstream:
                      url: http://127.0.0.1:1/news

                """
        try publish("v3", added)
        try await eventually("the new feed is served") {
            let answer = await Self.ask("HEAD /news", port: listenPort, group: group)
            return answer?.response.hasPrefix("HTTP/1.1 200") ?? false
        }
        let applied = await metrics()
        XCTAssertTrue(applied.contains("ssegate_config_reloads_total{result=\"applied\"} 1"), applied)
        XCTAssertTrue(running.process.isRunning)
    }

    private func install(_ certificates: TestCertificates, certificate: String, key: String) throws {
        for (source, target) in [(certificates.serverCertificate, certificate), (certificates.serverKey, key)] {
            let data = try Data(contentsOf: URL(fileURLWithPath: source))
            try data.write(to: URL(fileURLWithPath: target), options: .atomic)
        }
    }

    static func servedFingerprint(port: Int) throws -> String {
        try Self.shell(
            "openssl s_client -connect 127.0.0.1:\(port) -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        )
    }

    static func shell(_ command: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: Helpers

    /// Sends SIGTERM to `process` (this pid only) and returns the seconds until it exited (fails the
    /// test if it is still running after 8 s).
    static func terminateAndWait(
        _ process: Process,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> TimeInterval {
        let signalled = Date()
        process.terminate()
        while process.isRunning, Date().timeIntervalSince(signalled) < 8 {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTAssertFalse(process.isRunning, "serve still running 8 s after SIGTERM", file: file, line: line)
        return Date().timeIntervalSince(signalled)
    }

    /// One request (`"GET /readyz"`) on its own connection, answered within a second; nil when it failed.
    static func ask(
        _ requestLine: String,
        port: Int,
        group: EventLoopGroup
    ) async -> (response: String, closedByServer: Bool)? {
        try? await rawExchange(
            port: port,
            "\(requestLine) HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            group: group,
            timeout: .seconds(1)
        )
    }

    static func config(listenPort: Int, adminPort: Int, extra: String = "") -> String {
        """
        log_level: warning
        listen:
          - address: 127.0.0.1:\(listenPort)
        admin:
          address: 127.0.0.1:\(adminPort)
        \(extra)feeds:
          - path: /prices
            upstream:
              url: http://127.0.0.1:1/prices

        """
    }

    private func write(_ name: String, _ text: String) throws -> String {
        let url = self.directory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// A port that was free a moment ago (bind port 0, note it, close).
    static func freePort(group: EventLoopGroup) async throws -> Int {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }

    static func binary(file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        var candidates: [URL] = []
        let bundle = Bundle.main.bundleURL
        candidates.append(bundle.appendingPathComponent("ssegate"))
        candidates.append(bundle.deletingLastPathComponent().appendingPathComponent("ssegate"))
        let argv0 = URL(fileURLWithPath: CommandLine.arguments[0])
        candidates.append(argv0.deletingLastPathComponent().appendingPathComponent("ssegate"))
        candidates.append(
            argv0.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("ssegate")
        )
        // <root>/Tests/SSEGateCLITests/CommandLineTests.swift → <root>/.build/debug/ssegate
        let root = URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/ssegate"))
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue
            {
                return candidate
            }
        }
        XCTFail("the ssegate binary was not found; looked at \(candidates.map(\.path))", file: file, line: line)
        throw TestTimeout(message: "no ssegate binary")
    }

    final class Running: @unchecked Sendable {
        let process: Process
        private let output = NIOLockedValueBox((stdout: Data(), stderr: Data()))
        private let readers = DispatchGroup()

        init(process: Process, stdout: Pipe, stderr: Pipe) {
            self.process = process
            for (pipe, isError) in [(stdout, false), (stderr, true)] {
                self.readers.enter()
                DispatchQueue.global().async {
                    let handle = pipe.fileHandleForReading
                    while true {
                        let chunk = handle.availableData
                        if chunk.isEmpty { break }
                        self.output.withLockedValue { if isError { $0.stderr += chunk } else { $0.stdout += chunk } }
                    }
                    self.readers.leave()
                }
            }
        }

        var stdout: String { String(decoding: self.output.withLockedValue { $0.stdout }, as: UTF8.self) }
        var stderr: String { String(decoding: self.output.withLockedValue { $0.stderr }, as: UTF8.self) }

        /// Waits for both pipes to reach end of file (after the process exited).
        func drain(timeout: TimeInterval = 2) {
            _ = self.readers.wait(timeout: .now() + timeout)
        }
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    private func launch(_ arguments: [String]) throws -> Running {
        let process = Process()
        process.executableURL = try Self.binary()
        process.arguments = arguments
        process.currentDirectoryURL = self.directory
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.started.append(process)
        return Running(process: process, stdout: stdout, stderr: stderr)
    }

    /// Runs to completion (killed and failed after `timeout`).
    private func run(
        _ arguments: [String],
        timeout: TimeInterval = 10,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> Result {
        let running = try self.launch(arguments)
        let deadline = Date().addingTimeInterval(timeout)
        while running.process.isRunning {
            if Date() > deadline {
                kill(running.process.processIdentifier, SIGKILL)
                running.process.waitUntilExit()
                XCTFail(
                    "ssegate \(arguments.joined(separator: " ")) did not exit within \(timeout) s",
                    file: file,
                    line: line
                )
                throw TestTimeout(message: "process timeout")
            }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        running.drain()
        return Result(status: running.process.terminationStatus, stdout: running.stdout, stderr: running.stderr)
    }
}
