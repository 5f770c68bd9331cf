import NIOCore
import NIOPosix
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

final class DrainTests: XCTestCase {
    func testDrainSendsJitteredRetryAndSpreadsClosesOverTheWindow() async throws {
        let harness = try await Harness.start(
            configure: { $0.shutdownTimeout = .milliseconds(1000) },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices") { $0.settings.retry = .milliseconds(500) }]
            }
        )
        var clients: [TestSSEClient] = []
        for _ in 0..<30 { clients.append(try await harness.client("/prices")) }
        for client in clients { _ = try await client.waitForHead() }
        try await eventually("30 joined") { try await harness.metrics().connectedClients == 30 }
        let adminPort = harness.adminPort

        let started = NIODeadline.now()
        let drain = Task { try await harness.gateway.drainAndShutdown() }
        // Ready turns 503 at once; no new client is taken.
        try await eventually("readyz 503", timeout: .milliseconds(500)) {
            let result = try await rawExchange(
                port: adminPort,
                "GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                group: harness.clientGroup,
                timeout: .milliseconds(300)
            )
            return result.response.hasPrefix("HTTP/1.1 503")
        }
        for client in clients {
            try await client.waitForClose(timeout: .seconds(3))
        }
        try await drain.value
        let took = NIODeadline.now() - started
        XCTAssertLessThan(took, .milliseconds(3000), "exits within shutdown_timeout (plus a loaded machine's slack)")
        for client in clients {
            let retries = client.body.components(separatedBy: "\n").filter { $0.hasPrefix("retry: ") }.compactMap {
                Int($0.dropFirst(7))
            }
            XCTAssertEqual(retries.first, 500, "the stream's own retry first")
            XCTAssertEqual(retries.count, 2, "then the drain's jittered retry: \(retries)")
            XCTAssertGreaterThanOrEqual(retries.last ?? 0, 500)
            XCTAssertLessThanOrEqual(retries.last ?? 0, 1500)
        }
        let drainRetries = Set(
            clients.compactMap { $0.body.components(separatedBy: "\n").filter { $0.hasPrefix("retry: ") }.last }
        )
        XCTAssertGreaterThan(drainRetries.count, 5, "retry values are jittered")
        await harness.stop()
    }

    func testClosesAreSpreadNotAtOnce() async throws {
        let harness = try await Harness.start(
            configure: { $0.shutdownTimeout = .milliseconds(1000) },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices")]
            }
        )
        var clients: [TestSSEClient] = []
        for _ in 0..<40 { clients.append(try await harness.client("/prices")) }
        for client in clients { _ = try await client.waitForHead() }
        try await eventually("40 joined") { try await harness.metrics().connectedClients == 40 }
        let started = NIODeadline.now()
        let drain = Task { try await harness.gateway.drainAndShutdown() }
        var closeTimes: [Int64] = []
        var open = Set(0..<clients.count)
        while !open.isEmpty, NIODeadline.now() - started < .seconds(3) {
            for index in open where clients[index].isClosed {
                closeTimes.append((NIODeadline.now() - started).nanoseconds / 1_000_000)
                open.remove(index)
            }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        try await drain.value
        XCTAssertTrue(open.isEmpty, "every client closed")
        closeTimes.sort()
        // Uniform over an 800 ms window: the first quarter and the last quarter both see closes.
        XCTAssertLessThan(closeTimes.first ?? 1000, 300, "\(closeTimes)")
        XCTAssertGreaterThan(closeTimes.last ?? 0, 500, "\(closeTimes)")
        XCTAssertLessThan(closeTimes.last ?? 3000, 2000, "\(closeTimes)")
        let early = closeTimes.filter { $0 < 400 }.count
        XCTAssertGreaterThan(early, 5, "\(closeTimes)")
        XCTAssertLessThan(early, 35, "not all at once: \(closeTimes)")
        await harness.stop()
    }
}
