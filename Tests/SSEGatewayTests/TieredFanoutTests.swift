import Logging
import NIOCore
import NIOPosix
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// A gateway as another gateway's upstream (regional → middle → edge): ids, event types and gap
/// signals pass through unchanged, each tier holds one upstream connection per feed, and a client at
/// the edge misses nothing when the middle tier restarts.
final class TieredFanoutTests: XCTestCase {
    private func tier(
        upstream: String,
        port: Int,
        connect: ConnectMode,
        group: EventLoopGroup,
        gapEvent: Bool = false
    ) async throws -> GatewayServer {
        var config = GatewayConfig()
        config.listen = [ListenerConfig(address: HostPort(host: "127.0.0.1", port: port))]
        config.admin = nil
        config.shutdownTimeout = .milliseconds(100)
        config.feeds = [
            try Harness.feed("/prices", upstream: "\(upstream)/prices", connect: connect) {
                $0.settings.retry = .milliseconds(100)
                $0.settings.replay.gapEvent = gapEvent
            }
        ]
        var logger = Logger(label: "tier")
        logger.logLevel = .critical
        let server = GatewayServer(config: config, group: group, logger: logger)
        try await server.start()
        return server
    }

    func testThreeTiersDeliverAndTheEdgeResumesAfterTheMiddleTierRestarts() async throws {
        // Tier 1 (regional) is the harness gateway, in front of the origin.
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        let regional = "http://127.0.0.1:\(harness.port)"
        // The inner tier connects on demand: a restarted tier then resumes its upstream from the id its
        // first downstream joiner (the edge) holds, so nothing published meanwhile is lost.
        let middle = try await self.tier(upstream: regional, port: 0, connect: .onDemand, group: harness.group)
        let middlePort = middle.listenerAddresses[0].port!
        let edge = try await self.tier(
            upstream: "http://127.0.0.1:\(middlePort)",
            port: 0,
            connect: .always,
            group: harness.group
        )
        self.addTeardownBlock { try? await edge.shutdown() }
        let edgePort = edge.listenerAddresses[0].port!

        var clients: [TestSSEClient] = []
        for _ in 0..<20 {
            clients.append(try await TestSSEClient.connect(port: edgePort, path: "/prices", group: harness.clientGroup))
        }
        for client in clients { _ = try await client.waitForHead() }
        try await eventually("edge clients joined") {
            try await edge.metrics.snapshot(on: harness.group.next()).get().connectedClients == 20
        }
        try await eventually("the chain is up") {
            try await edge.metrics.snapshot(on: harness.group.next()).get().feeds.first?.upstreamState == .streaming
                && harness.origin.openConnections == 1
        }
        harness.origin.publish(data: "one")
        harness.origin.publish(data: "two\nlines", type: "tick")
        harness.origin.broadcast(ByteBuffer(string: "id: 3\n\n"))  // id-only block
        harness.origin.publish(data: "four", id: "4")
        for client in clients {
            let events = try await client.waitForEvents(4)
            XCTAssertEqual(
                events,
                [
                    ServerSentEvent(id: "1", data: "one"), ServerSentEvent(id: "2", type: "tick", data: "two\nlines"),
                    ServerSentEvent(id: "3", data: nil), ServerSentEvent(id: "4", data: "four"),
                ]
            )
        }
        // One upstream connection per tier: the origin sees one, the regional tier one client, the middle one.
        XCTAssertEqual(harness.origin.totalConnections, 1)
        let regionalClients = try await harness.metrics().connectedClients
        XCTAssertEqual(regionalClients, 1)

        // The middle tier restarts; events published meanwhile must still reach the edge, once each.
        try await middle.shutdown()
        harness.origin.publish(data: "five", id: "5")
        harness.origin.publish(data: "six", id: "6")
        try await Task.sleep(nanoseconds: 100_000_000)
        let restartedMiddle = try await self.tier(
            upstream: regional,
            port: middlePort,
            connect: .onDemand,
            group: harness.group
        )
        self.addTeardownBlock { try? await restartedMiddle.shutdown() }
        harness.origin.publish(data: "seven", id: "7")
        for client in clients {
            let events = try await client.waitForEvents(7, timeout: .seconds(10))
            XCTAssertEqual(events.compactMap(\.id), ["1", "2", "3", "4", "5", "6", "7"])
            XCTAssertFalse(client.isClosed, "edge clients stay connected while the middle tier restarts")
        }
        XCTAssertFalse(clients[0].body.contains(": gap"))
        for client in clients { await client.close() }
    }

    func testGapSignalsPassThroughATier() async throws {
        // The regional tier keeps 2 events and emits `event: gap`; the edge forwards it as any event.
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/prices", upstream: "\(origin)/prices") {
                    $0.settings.replay.maxEvents = 2
                    $0.settings.replay.gapEvent = true
                }
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream") { harness.origin.openConnections == 1 }
        for index in 1...5 { harness.origin.publish(data: "e\(index)") }
        try await eventually("regional has 5") {
            try await harness.metrics().feeds.first?.lastEventID == "5"
        }
        let edge = try await self.tier(
            upstream: "http://127.0.0.1:\(harness.port)",
            port: 0,
            connect: .onDemand,
            group: harness.group
        )
        self.addTeardownBlock { try? await edge.shutdown() }
        let client = try await TestSSEClient.connect(
            port: edge.listenerAddresses[0].port!,
            path: "/prices",
            headers: [("Last-Event-ID", "1")],
            group: harness.clientGroup
        )
        let events = try await client.waitForEvents(3)
        XCTAssertEqual(events.first?.type, "gap")
        XCTAssertEqual(events.first?.data, "{\"lastEventId\":\"1\",\"replayFrom\":\"4\"}")
        XCTAssertEqual(events.dropFirst().map(\.id), ["4", "5"])
        await client.close()
    }
}
