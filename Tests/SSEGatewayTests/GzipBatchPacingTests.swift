import CompressNIO
import NIOCore
import NIOEmbedded
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// A large batch reaches a gzip client as fragments of about 64 KiB of input (`GzipFragment.inputLimit`),
/// each through the client's queue like a plain client's events: once its channel turns unwritable the
/// rest waits in the queue, under `max_queue` and `max_lag`, instead of going into the channel as one
/// buffer of the whole batch that no bound sees.
final class GzipBatchPacingTests: XCTestCase {
    /// The channel's high watermark of the recording transports (what `GatewayServer` sets).
    static let watermark = 64 * 1024

    /// Run after each test: break the session ↔ transport cycles `join` makes.
    private var cleanups: [() -> Void] = []

    override func tearDown() {
        for cleanup in self.cleanups { cleanup() }
        self.cleanups = []
        super.tearDown()
    }

    /// One batch of 1 MiB to a plain and a gzip client that do not read: each channel holds the watermark
    /// and at most one more event or fragment, and both go over `max_queue`.
    func testABatchOverMaxQueueEvictsAGzipClientAsItDoesAPlainOne() throws {
        let gateway = EmbeddedGateway(
            feeds: [try EmbeddedGateway.feed("/prices") { $0.settings.client.maxQueue = 256 * 1024 }]
        )
        let plain = try self.join(gateway, gzip: false)
        let gzip = try self.join(gateway, gzip: true)
        gateway.publish("/prices", Self.events(128))
        for (name, transport) in [("plain", plain), ("gzip", gzip)] {
            XCTAssertTrue(transport.aborted, "\(name): over max_queue, evicted")
            XCTAssertLessThan(
                transport.written.readableBytes,
                Self.watermark + GzipFragment.inputLimit + 8 * 1024,
                "\(name): the channel holds the watermark and one more event or fragment"
            )
        }
        XCTAssertEqual(gateway.stats("/prices").evictionsMaxQueue, 2)
    }

    /// The same batch to a gzip client that reads slowly: the rest waits in its queue while the channel is
    /// unwritable, goes out piece by piece as it turns writable, and every event decodes.
    func testABatchOverTheWatermarkWaitsInTheQueueThenDecodesWhole() throws {
        let gateway = EmbeddedGateway(
            feeds: [try EmbeddedGateway.feed("/prices") { $0.settings.client.maxQueue = 4 * 1024 * 1024 }]
        )
        let transport = try self.join(gateway, gzip: true)
        let events = Self.events(128)
        gateway.publish("/prices", events)
        XCTAssertFalse(transport.isWritable)
        XCTAssertGreaterThan(gateway.hub.queuedBytes(), 512 * 1024, "the rest of the batch waits in the queue")
        var rounds = 0
        while gateway.hub.queuedBytes() > 0 && rounds < 100 {
            rounds += 1
            transport.highWatermark = transport.written.readableBytes + Self.watermark
            transport.isWritable = true
            transport.onWritabilityChange()
            gateway.loop.run()
        }
        XCTAssertEqual(gateway.hub.queuedBytes(), 0)
        XCTAssertGreaterThan(rounds, 5, "paced in pieces, not in one buffer")
        XCTAssertFalse(transport.aborted)
        var written = transport.written
        let decoded = String(buffer: try ZlibDecompressor(algorithm: .gzip).inflateAll(&written))
        var expected = ByteBuffer()
        for event in events { SSESerializer.write(event, into: &expected) }
        XCTAssertTrue(decoded.hasSuffix(String(buffer: expected)), "every event, in order, decodable")
    }

    // MARK: Setup

    /// 8 KiB events of random text (deflate takes off about a third): `count` of them.
    static func events(_ count: Int) -> [ServerSentEvent] {
        var generator = SeededGenerator(seed: 41)
        return (1...count).map { ServerSentEvent(id: "\($0)", data: generator.payload(bytes: 8192)) }
    }

    /// A client of `/prices` on a recording transport that turns unwritable at the watermark and tells its
    /// session, as a channel does.
    private func join(_ gateway: EmbeddedGateway, gzip: Bool) throws -> RecordingTransport {
        let transport = RecordingTransport(framing: .raw)
        transport.highWatermark = Self.watermark
        let session = try XCTUnwrap(
            StreamSession.admit(
                gateway.streamRequest("/prices", headers: gzip ? [("Accept-Encoding", "gzip")] : []),
                gateway: gateway.context,
                transport: transport,
                loop: gateway.loop
            )
        )
        transport.onWritabilityChange = { session.writabilityChanged() }
        // The closure keeps the session and the session its transport: let go after the test, or both (and
        // the live-session count that later tests wait to see at zero) stay for the whole run.
        self.cleanups.append {
            transport.onWritabilityChange = {}
            session.transportClosed()
        }
        session.begin()
        gateway.loop.run()
        return transport
    }
}
