import Logging
import NIOCore
import NIOPosix
import SSEOrigin

@testable import SSEGateTestSupport
@testable import SSEGateway

/// A real origin and a real gateway on 127.0.0.1 (ephemeral ports) in the test process.
final class Harness: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let clientGroup: MultiThreadedEventLoopGroup
    let origin: OriginServer
    let gateway: GatewayServer
    let admin: AdminService

    var port: Int { self.gateway.listenerAddresses[0].port! }
    var adminPort: Int { self.admin.address!.port! }
    var originURL: String { "http://127.0.0.1:\(self.origin.port)" }

    /// `feeds` gets the origin's base URL. Timers are short so tests stay fast. The gateway logs only
    /// critical lines unless a test passes its own `logger` (a `LogRecorder`'s, to count lines).
    /// `beforeGateway` runs on the started origin before the gateway starts (history the gateway never saw).
    static func start(
        origin originOptions: OriginServer.Options = OriginServer.Options(),
        beforeGateway: (OriginServer) -> Void = { _ in },
        configure: (inout GatewayConfig) -> Void = { _ in },
        logger testLogger: Logger? = nil,
        feeds: (String) throws -> [FeedConfig]
    ) async throws -> Harness {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let origin = OriginServer(options: originOptions, group: group)
        try await origin.start()
        beforeGateway(origin)
        var config = GatewayConfig()
        config.listen = [ListenerConfig(address: HostPort(host: "127.0.0.1", port: 0))]
        config.admin = AdminConfig(address: HostPort(host: "127.0.0.1", port: 0))
        config.feeds = try feeds("http://127.0.0.1:\(origin.port)")
        // The kernel's autotuned send buffers, as before `socket_send_buffer`: the suite's readers share two
        // threads while the gateway pushes megabytes per second at them on loopback, with tight max_queue
        // and max_lag bounds; a bounded buffer makes them fall behind. Tests of the bound set it.
        config.limits.socketSendBuffer = 0
        configure(&config)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        if let testLogger { logger = testLogger }
        let gateway = GatewayServer(config: config, group: group, logger: logger)
        try await gateway.start()
        let admin = AdminService(config: config.admin, server: gateway, logger: logger)
        try await admin.start()
        return Harness(group: group, clientGroup: clientGroup, origin: origin, gateway: gateway, admin: admin)
    }

    private init(
        group: MultiThreadedEventLoopGroup,
        clientGroup: MultiThreadedEventLoopGroup,
        origin: OriginServer,
        gateway: GatewayServer,
        admin: AdminService
    ) {
        self.group = group
        self.clientGroup = clientGroup
        self.origin = origin
        self.gateway = gateway
        self.admin = admin
    }

    /// A feed with test-friendly timers: fast backoff, short keepalive.
    static func feed(
        _ path: String,
        upstream: String,
        connect: ConnectMode = .always,
        configure: (inout FeedConfig) -> Void = { _ in }
    ) throws -> FeedConfig {
        var settings = FeedSettings()
        settings.upstream.backoffInitial = .milliseconds(20)
        settings.upstream.backoffMax = .milliseconds(200)
        settings.upstream.connectTimeout = .seconds(2)
        settings.keepalive = .seconds(30)
        // Exact `retry:` values in assertions; the jitter's own tests set it.
        settings.retryJitter = 0
        var feed = FeedConfig(
            name: path,
            path: try PathTemplate(parsing: path),
            upstreamURL: try UpstreamURL(parsing: upstream),
            settings: settings
        )
        feed.connect = connect
        configure(&feed)
        return feed
    }

    func client(
        _ path: String,
        headers: [(String, String)] = [],
        receiveBuffer: Int? = nil,
        reading: Bool = true,
        recordBody: Bool = true,
        gunzip: Bool = false
    ) async throws -> TestSSEClient {
        try await TestSSEClient.connect(
            port: self.port,
            path: path,
            headers: headers,
            group: self.clientGroup,
            receiveBuffer: receiveBuffer,
            reading: reading,
            recordBody: recordBody,
            gunzip: gunzip
        )
    }

    /// The gateway's metrics snapshot (what `/metrics` reports), gathered from every event loop.
    func metrics() async throws -> GatewayMetrics.Snapshot {
        try await self.gateway.metrics.snapshot(on: self.group.next()).get()
    }

    /// Clients that have joined a feed's fan-out (not only been admitted), over all feeds.
    func joinedClients() async throws -> Int {
        try await self.metrics().delivery.values.reduce(0) { $0 + $1.clients }
    }

    /// Waits until `count` clients have joined the feed at `path`.
    func waitUntilJoined(
        _ count: Int,
        path: String = "/prices",
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws {
        try await eventually("\(count) clients joined \(path)", file: file, line: line) {
            try await self.metrics().clientsPerFeed[path] == count
        }
    }

    func stop() async {
        try? await self.gateway.shutdown()
        await self.admin.stop()
        try? await self.origin.stop()
        try? await self.clientGroup.shutdownGracefully()
        try? await self.group.shutdownGracefully()
    }
}
