import NIOCore
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

final class ReloadTests: XCTestCase {
    func testReloadKeepsUnchangedFeedsAddsRemovesAndReconnectsChangedUpstreams() async throws {
        var origin = ""
        let harness = try await Harness.start { base in
            origin = base
            return [
                try Harness.feed("/keep", upstream: "\(base)/keep"),
                try Harness.feed("/gone", upstream: "\(base)/gone") { $0.settings.retry = .milliseconds(1234) },
                try Harness.feed("/change", upstream: "\(base)/change"),
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("three upstreams") { harness.origin.openConnections == 3 }
        let keep = try await harness.client("/keep")
        let gone = try await harness.client("/gone")
        let change = try await harness.client("/change")
        for client in [keep, gone, change] { _ = try await client.waitForHead() }
        try await eventually("joined") { try await harness.metrics().connectedClients == 3 }
        for index in 1...3 { harness.origin.publish(data: "before \(index)") }
        for client in [keep, gone, change] { _ = try await client.waitForEvents(3) }

        var config = harness.gateway.config
        config.feeds = [
            try Harness.feed("/keep", upstream: "\(origin)/keep"),
            try Harness.feed("/change", upstream: "\(origin)/change-v2"),
            try Harness.feed("/added", upstream: "\(origin)/added"),
        ]
        let (summary, errors) = await harness.gateway.reload(config)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(summary.added, ["/added"])
        XCTAssertEqual(summary.removed, ["/gone"])
        XCTAssertEqual(summary.changed, ["/change"])
        XCTAssertEqual(summary.unchanged, 1)

        // The removed feed's client is told when to come back, then its stream ends; the path is gone.
        try await gone.waitForClose()
        XCTAssertTrue(gone.body.hasSuffix("retry: 1234\n\n"), gone.body)
        let notFound = try await rawExchange(
            port: harness.port,
            "GET /gone HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        XCTAssertTrue(notFound.response.hasPrefix("HTTP/1.1 404"), notFound.response)

        // The changed feed reconnects upstream with its last id; its client stays.
        try await eventually("reconnected to the new upstream") {
            harness.origin.requests.contains { $0.uri == "/change-v2" }
        }
        XCTAssertEqual(harness.origin.requests.first { $0.uri == "/change-v2" }?.headers["Last-Event-ID"], ["3"])
        let added = try await harness.client("/added")
        _ = try await added.waitForHead()
        try await eventually("added joined") { try await harness.metrics().connectedClients == 3 }

        for index in 4...5 { harness.origin.publish(data: "after \(index)") }
        let kept = try await keep.waitForEvents(5)
        XCTAssertEqual(kept.map(\.id), ["1", "2", "3", "4", "5"], "same connection, no gap, no duplicate")
        let changed = try await change.waitForEvents(5)
        XCTAssertEqual(changed.map(\.id), ["1", "2", "3", "4", "5"])
        let addedEvents = try await added.waitForEvents(2)
        XCTAssertEqual(addedEvents.map(\.id), ["4", "5"])
        XCTAssertFalse(keep.isClosed)
        XCTAssertEqual(
            harness.origin.requests.filter { $0.uri == "/keep" }.count,
            1,
            "the unchanged feed kept its one upstream connection"
        )
        for client in [keep, change, added] { await client.close() }
    }

    func testReloadChangesSettingsInPlaceAndRebindsListeners() async throws {
        let harness = try await Harness.start { base in
            [try Harness.feed("/prices", upstream: "\(base)/prices") { $0.settings.keepalive = .seconds(30) }]
        }
        self.addTeardownBlock { await harness.stop() }
        let client = try await harness.client("/prices")
        _ = try await client.waitForHead()
        var config = harness.gateway.config
        config.feeds[0].settings.keepalive = .milliseconds(100)
        config.listen.append(ListenerConfig(address: HostPort(host: "127.0.0.1", port: 0)))
        config.limits.maxClients = 5
        let (summary, errors) = await harness.gateway.reload(config)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(summary.changed, ["/prices"])
        try await client.wait("keepalives at the new pace") {
            $0.body.components(separatedBy: ": keepalive").count >= 3
        }
        XCTAssertEqual(harness.gateway.listenerAddresses.count, 2)
        let second = try await TestSSEClient.connect(
            port: harness.gateway.listenerAddresses[1].port!,
            path: "/prices",
            group: harness.clientGroup
        )
        let secondHead = try await second.waitForHead()
        XCTAssertEqual(secondHead.status, .ok)
        XCTAssertEqual(harness.gateway.context.limits.maxClients, 5)
        await client.close()
        await second.close()
    }
}
