import NIOCore
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Issue 14, item 3: SETTINGS, PING, CONTINUATION and RST_STREAM floods against the running gateway.
/// SwiftNIO's own defences answer them (`DownstreamPipeline.configureHTTP2` writes them out): the attacking
/// connection gets GOAWAY and is closed, what it opened is released, `/metrics` counts it, and 50 HTTP/1.1
/// readers and an HTTP/2 reader get every event published during the floods.
final class HTTP2FrameFloodTests: XCTestCase {
    private static let protocolError: UInt32 = 0x1
    private static let enhanceYourCalm: UInt32 = 0xB

    override func setUp() async throws {
        try await waitUntilNoLiveObjects()
    }

    /// Floods one new connection with `batch` (written and flushed up to 20 times, until the gateway
    /// closes it) and returns the GOAWAY's error code.
    private func flood(port: Int, group: EventLoopGroup, _ batch: (H2RawConnection) -> Void) async throws -> UInt32? {
        let attacker = try await H2RawConnection.connect(port: port, group: group)
        try await attacker.wait("the server's SETTINGS") { $0.contains { $0.type == H2RawConnection.Frame.settings } }
        var writes = 0
        while writes < 20, !attacker.isClosed {
            batch(attacker)
            guard await attacker.flushAndWait() else { break }
            writes += 1
        }
        let frames = try await attacker.wait("GOAWAY", timeout: .seconds(8)) {
            $0.contains { $0.type == H2RawConnection.Frame.goAway }
        }
        try await eventually("the flooding connection closed", timeout: .seconds(8)) { attacker.isClosed }
        XCTAssertLessThan(writes, 20, "closed before the flood was over")
        return frames.last { $0.type == H2RawConnection.Frame.goAway }?.errorCode
    }

    func testFramesFloodsGetGoAwayWhileOthersStream() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        var readers: [TestSSEClient] = []
        for _ in 0..<50 { readers.append(try await harness.client("/prices", recordBody: false)) }
        let h2 = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        let h2Reader = try await h2.request("/prices")
        _ = try await h2Reader.waitForHeaders()
        try await harness.waitUntilJoined(51)
        let baseline = LiveObjects.snapshot
        let port = harness.port
        let group = harness.clientGroup
        let request = [(":method", "GET"), (":scheme", "http"), (":path", "/prices"), (":authority", "a")]

        var published = 0
        func publish() {
            published += 1
            harness.origin.publish(data: "tick \(published)")
        }
        publish()
        // SETTINGS flood: 1,000 empty SETTINGS frames per write.
        let settings = try await self.flood(port: port, group: group) {
            $0.sendFrames(type: H2RawConnection.Frame.settings, count: 1000)
        }
        XCTAssertEqual(settings, Self.enhanceYourCalm, "SETTINGS flood")
        publish()
        // PING flood.
        let ping = try await self.flood(port: port, group: group) {
            $0.sendFrames(
                type: H2RawConnection.Frame.ping,
                payload: ByteBuffer(bytes: [0, 0, 0, 0, 0, 0, 0, 1]),
                count: 1000
            )
        }
        XCTAssertEqual(ping, Self.enhanceYourCalm, "PING flood")
        publish()
        // CONTINUATION flood (CVE-2024-27316): a HEADERS frame without END_HEADERS, then empty CONTINUATION
        // frames that never end the block.
        var started = false
        let continuation = try await self.flood(port: port, group: group) { attacker in
            if !started {
                started = true
                attacker.sendHeadersWithoutEnd(streamID: 1, request)
            }
            attacker.sendFrames(type: H2RawConnection.Frame.continuation, streamID: 1, count: 1000)
        }
        XCTAssertEqual(continuation, Self.enhanceYourCalm, "CONTINUATION flood")
        publish()
        // The same with 4 KiB fragments: the block outgrows max_header_bytes before 5 frames are in.
        started = false
        let fragment = ByteBuffer(repeating: 0x40, count: 4096)
        let largeBlock = try await self.flood(port: port, group: group) { attacker in
            if !started {
                started = true
                attacker.sendHeadersWithoutEnd(streamID: 1, request)
            }
            attacker.sendFrames(type: H2RawConnection.Frame.continuation, streamID: 1, payload: fragment, count: 100)
        }
        XCTAssertEqual(largeBlock, Self.protocolError, "CONTINUATION frames past max_header_bytes")
        publish()
        // RST_STREAM flood on one connection: HEADERS + RST_STREAM pairs, 300 per write.
        var nextStream: UInt32 = 1
        let resets = try await self.flood(port: port, group: group) { attacker in
            for _ in 0..<300 {
                attacker.sendHeaders(streamID: nextStream, request)
                attacker.sendRSTStream(streamID: nextStream)
                nextStream += 2
            }
        }
        XCTAssertEqual(resets, Self.enhanceYourCalm, "RST_STREAM flood")
        publish()

        try await waitUntil(timeout: .seconds(10), interval: .milliseconds(10)) { LiveObjects.snapshot == baseline }
        XCTAssertEqual(LiveObjects.snapshot, baseline, "every attacking connection and stream released")
        let metrics = try await harness.gateway.metrics.render(on: harness.group.next()).get()
        for (reason, count) in [
            ("control_frames", 2), ("continuation_frames", 1), ("header_block_size", 1), ("reset_frames", 1),
        ] {
            XCTAssertTrue(
                metrics.contains("ssegate_http2_connection_errors_total{reason=\"\(reason)\"} \(count)"),
                "\(reason): \(metrics)"
            )
        }
        for reader in readers {
            let events = try await reader.waitForEvents(published)
            XCTAssertEqual(events.map(\.data), (1...published).map { "tick \($0)" })
        }
        let h2Events = try await h2Reader.waitForEvents(published)
        XCTAssertEqual(h2Events.map(\.data), (1...published).map { "tick \($0)" })
        XCTAssertFalse(h2.isClosed)
        await h2.close()
        for reader in readers { await reader.close() }
    }
}
