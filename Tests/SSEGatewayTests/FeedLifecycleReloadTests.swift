import NIOCore
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// The lifecycle's reload transitions through a real gateway and origin.
final class FeedLifecycleReloadTests: XCTestCase {
    /// An on-demand feed lingering without clients that a reload makes `connect: always` keeps its upstream:
    /// the linger armed before the reload must not stop it.
    func testAReloadToConnectAlwaysDuringTheLingerKeepsTheUpstream() async throws {
        var origin = ""
        let linger = TimeAmount.milliseconds(300)
        let harness = try await Harness.start { base in
            origin = base
            return [try Harness.feed("/held", upstream: "\(base)/held", connect: .onDemand) { $0.linger = linger }]
        }
        self.addTeardownBlock { await harness.stop() }
        let client = try await harness.client("/held")
        _ = try await client.waitForHead()
        try await eventually("upstream open") { harness.origin.openConnections == 1 }
        await client.close()
        try await eventually("client gone") { try await harness.metrics().connectedClients == 0 }

        var config = harness.gateway.config
        config.feeds = [
            try Harness.feed("/held", upstream: "\(origin)/held", connect: .always) { $0.linger = linger }
        ]
        let (summary, errors) = await harness.gateway.reload(config)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(summary.changed, ["/held"])
        // Well past the linger: the upstream is still the one connection it was.
        try await Task.sleep(nanoseconds: UInt64((linger + linger + linger).nanoseconds))
        XCTAssertEqual(harness.origin.openConnections, 1, "the linger of before the reload stopped the upstream")
        XCTAssertEqual(harness.origin.requests.filter { $0.uri == "/held" }.count, 1)
    }
}
