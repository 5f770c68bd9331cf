import Foundation
import Logging
import NIOCore
import NIOPosix
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Issue 14, item 8 ("RSS stays flat"): every SIGHUP reload, even of an unchanged file, kept the whole
/// parse of the file (YAML nodes, every `ConfigMapping`, a copy of the process environment) through a
/// cycle between `ConfigContext` and its mappings: ~17 KB of RSS per reload, forever. Each load's context
/// must be gone once the load is over, applied or rejected.
final class ConfigReloadLeakTests: XCTestCase {
    static let yaml = """
        log_level: warning
        defaults:
          retry: 2s
          upstream: { connect_timeout: 1s }
        feeds:
          - path: /prices
            upstream:
              url: http://127.0.0.1:1/prices
          - path: /news
            upstream:
              url: http://127.0.0.1:1/news
        """

    /// Other tests of the process may be parsing at the same moment; theirs end within milliseconds.
    private func assertContextsBack(
        to baseline: Int,
        after what: String,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws {
        try await waitUntil(timeout: .seconds(5), interval: .milliseconds(10)) {
            LiveObjects.configContexts.value <= baseline
        }
        XCTAssertLessThanOrEqual(
            LiveObjects.configContexts.value,
            baseline,
            "config contexts still alive after \(what)",
            file: file,
            line: line
        )
    }

    func testParsedAndRejectedConfigsAreReleased() async throws {
        let baseline = LiveObjects.configContexts.value
        for _ in 0..<50 {
            _ = try ConfigFixtures.parse(Self.yaml)
        }
        try await self.assertContextsBack(to: baseline, after: "50 parses")
        for _ in 0..<50 {
            _ = ConfigFixtures.errors(Self.yaml + "\nno_such_key: 1\n")
        }
        try await self.assertContextsBack(to: baseline, after: "50 rejected parses")
    }

    /// The SIGHUP path itself: `ConfigReloader.reload()` of an unchanged file on a running gateway.
    func testRepeatedReloadsOfAnUnchangedFileKeepNothing() async throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        let configFile = directory + "/ssegate.yaml"
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.addTeardownBlock { try? await group.shutdownGracefully() }
        // The config cannot say port 0, so take a free port (closed again before the gateway binds it).
        let probe = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0).get()
        let listenPort = try XCTUnwrap(probe.localAddress?.port)
        try await probe.close()
        try "listen: [{ address: \"127.0.0.1:\(listenPort)\" }]\n\(Self.yaml)\n"
            .write(toFile: configFile, atomically: true, encoding: .utf8)
        let config = try ConfigLoader.load(file: configFile)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = GatewayServer(config: config, group: group, logger: logger)
        try await server.start()
        let admin = AdminService(config: config.admin, server: server, logger: logger)
        // Registered after the group's, so they run first (teardown blocks run last-in, first-out).
        self.addTeardownBlock {
            try? await server.shutdown()
            await admin.stop()
        }
        let reloader = ConfigReloader(server: server, admin: admin, file: configFile, config: config, logger: logger)

        let baseline = LiveObjects.configContexts.value
        for _ in 0..<50 {
            await reloader.reload()
        }
        XCTAssertEqual(server.metrics.reloadsApplied.load(ordering: .relaxed), 50)
        try await self.assertContextsBack(to: baseline, after: "50 applied reloads")

        try "listen: [{ address: \"127.0.0.1:\(listenPort)\" }]\n\(Self.yaml)\nno_such_key: 1\n"
            .write(toFile: configFile, atomically: true, encoding: .utf8)
        for _ in 0..<20 {
            await reloader.reload()
        }
        XCTAssertEqual(server.metrics.reloadsRejected.load(ordering: .relaxed), 20)
        try await self.assertContextsBack(to: baseline, after: "20 rejected reloads")
    }
}
