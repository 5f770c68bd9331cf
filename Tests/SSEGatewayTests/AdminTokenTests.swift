import Foundation
import Logging
import NIOCore
import NIOPosix
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// `admin.token_file` on the running admin listener: every path but `/healthz` and `/readyz` demands the
/// token (Bearer, Basic password or the `ssegate_admin` cookie), a refusal is a JSON 401 with a Bearer
/// challenge, and a reload swaps the token for open connections and status streams too.
final class AdminTokenTests: XCTestCase {
    static let token = "3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e"
    static let otherToken = "b7d1e3f5a9c2b4d6e8f0a1c3e5b7d9f1"

    func testEveryPathButTheProbesDemandsTheToken() async throws {
        let harness = try await Self.harness(token: Self.token)
        self.addTeardownBlock { await harness.stop() }
        for path in ["/metrics", "/api/feeds", "/", "/index.html", "/api/status/stream", "/no-such-path"] {
            for authorization in [nil, "Bearer wrong-token-0123456789", "Bearer \(Self.token)x", "Token \(Self.token)"]
            {
                let response = try await self.get(path, harness, authorization.map { [("Authorization", $0)] } ?? [])
                XCTAssertEqual(response.status, 401, "\(path) \(authorization ?? "none")")
                XCTAssertEqual(response.body, "{\"error\":\"unauthorized\"}\n", path)
                XCTAssertEqual(response.header("Content-Type"), ["application/json"], path)
                let challenges = response.header("WWW-Authenticate")
                XCTAssertEqual(challenges.first, "Bearer realm=\"ssegate-admin\"", path)
                // Only what a browser opens offers Basic, so that the browser asks the person for the token.
                let browser = ["/", "/index.html", "/api/status/stream"].contains(path)
                XCTAssertEqual(challenges.count, browser ? 2 : 1, "\(path): \(challenges)")
                if browser {
                    XCTAssertEqual(challenges.last, "Basic realm=\"ssegate-admin\", charset=\"UTF-8\"", path)
                }
            }
        }
        // Probes cannot send tokens, and their answers show nothing.
        for path in ["/healthz", "/readyz"] {
            let response = try await self.get(path, harness)
            XCTAssertEqual(response.status, 200, path)
        }
    }

    func testTheTokenIsAcceptedAsBearerAsBasicPasswordAndAsCookie() async throws {
        let harness = try await Self.harness(token: Self.token)
        self.addTeardownBlock { await harness.stop() }
        let basic = Data("anyone:\(Self.token)".utf8).base64EncodedString()
        let ways: [[(String, String)]] = [
            [("Authorization", "Bearer \(Self.token)")],
            [("Authorization", "bearer   \(Self.token)")],
            [("Authorization", "Basic \(basic)")],
            [("Cookie", "theme=dark; ssegate_admin=\(Self.token)")],
            // A stale cookie does not hide a good header.
            [("Cookie", "ssegate_admin=old-token-0123456789"), ("Authorization", "Bearer \(Self.token)")],
        ]
        for headers in ways {
            for path in ["/metrics", "/api/feeds", "/"] {
                let response = try await self.get(path, harness, headers)
                XCTAssertEqual(response.status, 200, "\(path) \(headers)")
            }
        }
        // The page's EventSource brings what the browser has (here the cookie) and streams.
        let stream = try await TestSSEClient.connect(
            port: harness.adminPort,
            path: "/api/status/stream?interval_ms=100",
            headers: [("Cookie", "ssegate_admin=\(Self.token)")],
            group: harness.clientGroup
        )
        _ = try await stream.waitForEvents(1)
        await stream.close()
    }

    /// The decision for browsers: the page's 401 offers Basic, the browser answers with the token as password
    /// (here from the URL, as a person would type it into the prompt) and sends the same credentials with
    /// the page's `EventSource`, so the status page goes live.
    func testChromiumGetsThePageAndItsStreamWithTheTokenAsBasicPassword() async throws {
        let harness = try await Self.harness(token: Self.token)
        self.addTeardownBlock { await harness.stop() }
        let browser = try await DevToolsBrowser.open(
            url: "http://admin:\(Self.token)@127.0.0.1:\(harness.adminPort)/?interval_ms=100",
            group: harness.clientGroup
        )
        defer { browser.close() }
        try await eventually("the status page is live", timeout: .seconds(15)) {
            let live = try await browser.evaluate(
                "String(document.body.dataset.state === 'live' && +(document.body.dataset.samples || 0) >= 2)"
            )
            return live == "true"
        }
    }

    func testAReloadedTokenAppliesAtOnceAndEndsStreamsOpenedWithTheOldOne() async throws {
        let harness = try await Self.harness(token: Self.token)
        self.addTeardownBlock { await harness.stop() }
        let stream = try await TestSSEClient.connect(
            port: harness.adminPort,
            path: "/api/status/stream?interval_ms=100",
            headers: [("Authorization", "Bearer \(Self.token)")],
            group: harness.clientGroup
        )
        _ = try await stream.waitForEvents(1)
        let port = harness.adminPort

        let errors = await harness.admin.reload(
            AdminConfig(address: HostPort(host: "127.0.0.1", port: 0), token: try AdminToken(Self.otherToken))
        )
        XCTAssertEqual(errors, [])
        XCTAssertEqual(harness.adminPort, port, "a new token alone does not rebind the listener")
        try await stream.waitForClose(timeout: .seconds(3))
        let old = try await self.get("/metrics", harness, [("Authorization", "Bearer \(Self.token)")])
        let new = try await self.get("/metrics", harness, [("Authorization", "Bearer \(Self.otherToken)")])
        XCTAssertEqual([old.status, new.status], [401, 200])

        // Removing `token_file` opens the listener again.
        _ = await harness.admin.reload(AdminConfig(address: HostPort(host: "127.0.0.1", port: 0)))
        let open = try await self.get("/api/feeds", harness)
        XCTAssertEqual(open.status, 200)
    }

    func testSIGHUPReloadRereadsTheTokenFile() async throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        let tokenFile = directory + "/admin.token"
        let configFile = directory + "/ssegate.yaml"
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.addTeardownBlock { try? await group.shutdownGracefully() }
        try (Self.token + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        // The config cannot say port 0, so take two free ports (closed again before the gateway binds them).
        let listenPort = try await Self.freePort(group: group)
        let adminPort = try await Self.freePort(group: group)
        try """
        listen: [{ address: "127.0.0.1:\(listenPort)" }]
        admin: { address: "127.0.0.1:\(adminPort)", token_file: admin.token }
        """.write(toFile: configFile, atomically: true, encoding: .utf8)
        let config = try ConfigLoader.load(file: configFile)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = GatewayServer(config: config, group: group, logger: logger)
        try await server.start()
        let admin = AdminService(config: config.admin, server: server, logger: logger)
        try await admin.start()
        // Registered after the group's, so they run first (teardown blocks run last-in, first-out).
        self.addTeardownBlock {
            try? await server.shutdown()
            await admin.stop()
        }
        let port = try XCTUnwrap(admin.address?.port)
        func status(_ token: String) async throws -> Int {
            let (text, _) = try await rawExchange(
                port: port,
                "GET /metrics HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n",
                group: group
            )
            return try XCTUnwrap(RawConnection.parseResponses(text, headOnly: true).first, text).status
        }
        let before = try await status(Self.token)
        XCTAssertEqual(before, 200)

        try (Self.otherToken + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        await ConfigReloader(server: server, admin: admin, file: configFile, logger: logger).reload()
        let old = try await status(Self.token)
        let new = try await status(Self.otherToken)
        XCTAssertEqual([old, new], [401, 200])

        // An emptied file is a rejected reload: the token in force stays.
        try "".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        await ConfigReloader(server: server, admin: admin, file: configFile, logger: logger).reload()
        let kept = try await status(Self.otherToken)
        XCTAssertEqual(kept, 200)
        XCTAssertEqual(server.metrics.reloadsRejected.load(ordering: .relaxed), 1)
    }

    // MARK: - Helpers

    private static func freePort(group: EventLoopGroup) async throws -> Int {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try XCTUnwrap(channel.localAddress?.port)
        try await channel.close()
        return port
    }

    private static func harness(token: String) async throws -> Harness {
        let token = try AdminToken(token)
        return try await Harness.start(
            configure: { $0.admin?.token = token },
            feeds: { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        )
    }

    private func get(
        _ path: String,
        _ harness: Harness,
        _ headers: [(String, String)] = []
    ) async throws -> RawConnection.Response {
        let fields = headers.map { "\($0.0): \($0.1)\r\n" }.joined()
        let (text, _) = try await rawExchange(
            port: harness.adminPort,
            "GET \(path) HTTP/1.1\r\nHost: a\r\n\(fields)Connection: close\r\n\r\n",
            group: harness.clientGroup
        )
        return try XCTUnwrap(RawConnection.parseResponses(text, headOnly: false).first, text)
    }
}
