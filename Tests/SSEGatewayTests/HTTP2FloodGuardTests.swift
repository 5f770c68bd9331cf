import NIOCore
import NIOEmbedded
import XCTest

@testable import SSEGateway

/// The values behind `HTTP2FloodGuard` as plain values, and the handler on an `EmbeddedChannel`.
final class HTTP2FloodGuardTests: XCTestCase {
    private typealias Header = HTTP2FrameHeaderScanner.Header
    private static let preface = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

    private static func frame(type: UInt8, streamID: UInt32, payload: [UInt8] = [], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(payload.count >> 16))
        buffer.writeInteger(UInt16(truncatingIfNeeded: payload.count))
        buffer.writeInteger(type)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(streamID)
        buffer.writeBytes(payload)
    }

    // MARK: Scanner

    func testScannerFindsEveryHeaderWhereverTheBytesAreSplit() {
        var bytes = Self.preface
        Self.frame(type: 0x4, streamID: 0, into: &bytes)
        Self.frame(type: 0x1, streamID: 1, payload: Array(repeating: 0x82, count: 20), into: &bytes)
        Self.frame(type: 0x8, streamID: 0, payload: [0, 0, 0, 1], into: &bytes)
        Self.frame(type: 0x0, streamID: 1, payload: Array(repeating: 0x61, count: 300), into: &bytes)
        Self.frame(type: 0x3, streamID: 0x8000_0001, payload: [0, 0, 0, 8], into: &bytes)
        let expected = [
            Header(length: 0, type: 0x4, flags: 0, streamID: 0), Header(length: 20, type: 0x1, flags: 0, streamID: 1),
            Header(length: 4, type: 0x8, flags: 0, streamID: 0), Header(length: 300, type: 0x0, flags: 0, streamID: 1),
            Header(length: 4, type: 0x3, flags: 0, streamID: 1),
        ]
        for first in 0...bytes.readableBytes {
            for second in stride(from: first, through: bytes.readableBytes, by: 7) {
                var scanner = HTTP2FrameHeaderScanner(afterClientPreface: true)
                var seen: [Header] = []
                for range in [0..<first, first..<second, second..<bytes.readableBytes] {
                    scanner.scan(bytes.getSlice(at: range.lowerBound, length: range.count)!) {
                        seen.append($0)
                        return true
                    }
                }
                XCTAssertEqual(seen, expected, "split at \(first) and \(second)")
            }
        }
    }

    // MARK: Budget

    func testNoProgressFramesFollowEnvoysRule() {
        var budget = HTTP2ConnectionBudget()
        let now = NIODeadline.now()
        let windowUpdate = Header(length: 4, type: 0x8, flags: 0, streamID: 0)
        // No stream, no data: 5.
        for _ in 0..<5 { XCTAssertEqual(budget.received(windowUpdate, now: now), .proceed) }
        XCTAssertEqual(budget.received(windowUpdate, now: now), .tooManyNoProgressFrames)

        budget = HTTP2ConnectionBudget()
        XCTAssertEqual(budget.received(Header(length: 10, type: 0x1, flags: 4, streamID: 1), now: now), .proceed)
        for _ in 0..<3 { budget.sent(Header(length: 100, type: 0x0, flags: 0, streamID: 1)) }
        budget.sent(Header(length: 10, type: 0x1, flags: 4, streamID: 1))
        // 5 + 2 × (1 stream + 10 × 3 DATA frames) = 67; unknown extension frames count too.
        XCTAssertEqual(budget.noProgressAllowance, 67)
        for index in 0..<67 {
            XCTAssertEqual(
                budget.received(Header(length: 4, type: index % 2 == 0 ? 0x8 : 0xF0, flags: 0, streamID: 1), now: now),
                .proceed
            )
        }
        XCTAssertEqual(budget.received(windowUpdate, now: now), .tooManyNoProgressFrames)
        // Frames that make progress (or that SwiftNIO limits itself) never count.
        var other = HTTP2ConnectionBudget()
        for type: UInt8 in [0x0, 0x2, 0x4, 0x6, 0x9] {
            for _ in 0..<100 {
                XCTAssertEqual(other.received(Header(length: 0, type: type, flags: 0, streamID: 0), now: now), .proceed)
            }
        }
    }

    /// The allowance counts the last 10-20 s of DATA: an hour of streaming banks nothing that a later
    /// flood could spend, while WINDOW_UPDATEs answering data of the previous epoch still pass.
    func testALongConnectionBanksNoAllowance() {
        var budget = HTTP2ConnectionBudget()
        let start = NIODeadline.now()
        let windowUpdate = Header(length: 4, type: 0x8, flags: 0, streamID: 1)
        XCTAssertEqual(budget.received(Header(length: 10, type: 0x1, flags: 4, streamID: 1), now: start), .proceed)
        for _ in 0..<100_000 { budget.sent(Header(length: 100, type: 0x0, flags: 0, streamID: 1)) }
        // Just after the epoch turns: the previous epoch's DATA still grants window updates.
        let next = start + .seconds(11)
        for _ in 0..<1000 { XCTAssertEqual(budget.received(windowUpdate, now: next), .proceed) }
        // A whole epoch later with no DATA sent: only the base allowance remains.
        let later = start + .seconds(40)
        for _ in 0..<5 { XCTAssertEqual(budget.received(windowUpdate, now: later), .proceed) }
        XCTAssertEqual(budget.received(windowUpdate, now: later), .tooManyNoProgressFrames)
    }

    func testAResetIsPrematureWithinOneToTwoSecondsOfTheStreamsOpening() {
        // Each stream is reset once: a stream the client has already reset is not charged again.
        var budget = HTTP2ConnectionBudget()
        let start = NIODeadline.uptimeNanoseconds(10_000_000_000)
        let reset = { (id: UInt32) in Header(length: 4, type: 0x3, flags: 0, streamID: id) }
        let open = { (id: UInt32) in Header(length: 10, type: 0x1, flags: 4, streamID: id) }
        XCTAssertEqual(budget.received(open(1), now: start), .proceed)
        XCTAssertEqual(budget.received(open(3), now: start), .proceed)
        XCTAssertEqual(budget.received(open(5), now: start + .milliseconds(900)), .proceed)
        XCTAssertEqual(budget.received(open(7), now: start + .milliseconds(900)), .proceed)
        XCTAssertEqual(budget.received(reset(1), now: start + .milliseconds(10)), .prematureReset)
        XCTAssertEqual(budget.received(reset(1), now: start + .milliseconds(20)), .proceed, "already reset")
        XCTAssertEqual(
            budget.received(reset(3), now: start + .milliseconds(1500)),
            .prematureReset,
            "opened in the previous window"
        )
        XCTAssertEqual(budget.received(reset(5), now: start + .milliseconds(1900)), .prematureReset)
        XCTAssertEqual(budget.received(open(9), now: start + .milliseconds(1950)), .proceed)
        XCTAssertEqual(budget.received(reset(7), now: start + .milliseconds(2100)), .proceed, "opened two windows ago")
        XCTAssertEqual(
            budget.received(reset(9), now: start + .milliseconds(2100)),
            .prematureReset,
            "opened in the previous window"
        )
        XCTAssertEqual(budget.received(open(11), now: start + .milliseconds(2100)), .proceed)
        XCTAssertEqual(budget.received(reset(11), now: start + .seconds(5)), .proceed)
        XCTAssertEqual(budget.lastStreamID, 11)
        XCTAssertEqual(budget.streamsOpened, 6)
    }

    /// Envoy's premature reset: a stream the client gives up before the gateway answered it, by a
    /// RST_STREAM or by closing the connection. A stream that got its response head is a client leaving.
    func testOnlyStreamsEndedBeforeTheirResponseArePremature() {
        var budget = HTTP2ConnectionBudget()
        let now = NIODeadline.uptimeNanoseconds(10_000_000_000)
        let open = { (id: UInt32) in Header(length: 10, type: 0x1, flags: 4, streamID: id) }
        let reset = { (id: UInt32) in Header(length: 4, type: 0x3, flags: 0, streamID: id) }
        for id in stride(from: UInt32(1), through: 11, by: 2) {
            XCTAssertEqual(budget.received(open(id), now: now), .proceed)
        }
        budget.sent(Header(length: 30, type: 0x1, flags: 4, streamID: 1))  // response head
        budget.sent(Header(length: 4, type: 0x3, flags: 0, streamID: 3))  // refused by the gateway
        XCTAssertEqual(budget.received(reset(1), now: now), .proceed, "answered: a closed tab")
        XCTAssertEqual(budget.received(reset(3), now: now), .proceed, "the gateway ended it")
        XCTAssertEqual(budget.received(reset(5), now: now), .prematureReset)
        // 7, 9 and 11 are left unanswered; the close ends those the HTTP/2 handler was given.
        XCTAssertEqual(budget.prematureEndsAtClose(through: 11, now: now), 3)
        XCTAssertEqual(budget.prematureEndsAtClose(through: 9, now: now), 2)
        XCTAssertEqual(budget.prematureEndsAtClose(through: 11, now: now + .seconds(3)), 0, "no longer recent")
    }

    func testListenerWindowAllowsTheLimitPerSecond() {
        var window = ResetWindow()
        let start = NIODeadline.uptimeNanoseconds(5_000_000_000)
        for _ in 0..<3 { XCTAssertTrue(window.record(limit: 3, now: start)) }
        XCTAssertFalse(window.record(limit: 3, now: start + .milliseconds(999)))
        XCTAssertTrue(window.record(limit: 3, now: start + .seconds(1)))
        XCTAssertFalse(window.isSpent(limit: 3, now: start + .seconds(1)))
        window.add(2, now: start + .milliseconds(1100))
        XCTAssertTrue(window.isSpent(limit: 3, now: start + .milliseconds(1100)))
        XCTAssertFalse(window.isSpent(limit: 3, now: start + .seconds(2)), "a new second")
    }

    // MARK: Handler

    func testWindowUpdateFloodIsNotForwardedAndGetsGoAway() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            HTTP2FloodGuard(listener: ListenerResetBudget(), prematureResetsPerSecond: 10)
        )
        var hello = Self.preface
        Self.frame(type: 0x4, streamID: 0, into: &hello)
        Self.frame(type: 0x1, streamID: 1, payload: [0x82], into: &hello)
        try channel.writeInbound(hello)
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self), hello, "passed on unchanged")
        var flood = ByteBuffer()
        for _ in 0..<100 { Self.frame(type: 0x8, streamID: 0, payload: [0, 0, 0, 1], into: &flood) }
        try channel.writeInbound(flood)
        XCTAssertNil(try channel.readInbound(as: ByteBuffer.self), "the read that crossed the budget is dropped")
        var goAway = try XCTUnwrap(channel.readOutbound(as: IOData.self)).byteBuffer
        XCTAssertEqual(goAway.readBytes(length: 9), [0, 0, 8, 0x7, 0, 0, 0, 0, 0])
        XCTAssertEqual(goAway.readInteger(as: UInt32.self), 1, "last stream id")
        XCTAssertEqual(goAway.readInteger(as: UInt32.self), 0xB, "ENHANCE_YOUR_CALM")
        XCTAssertFalse(channel.isActive)
    }

    /// A connection that opens streams and closes before they were answered spends the listener's budget;
    /// once it is spent, the next connection's first new stream gets GOAWAY and is never passed on.
    func testClosingOverUnansweredStreamsSpendsTheListenerBudget() throws {
        let listener = ListenerResetBudget()
        let first = EmbeddedChannel()
        try first.pipeline.syncOperations.addHandler(HTTP2FloodGuard(listener: listener, prematureResetsPerSecond: 3))
        try first.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        var opened = Self.preface
        Self.frame(type: 0x4, streamID: 0, into: &opened)
        for id in stride(from: UInt32(1), through: 7, by: 2) {
            Self.frame(type: 0x1, streamID: id, payload: [0x82], into: &opened)
        }
        try first.writeInbound(opened)
        XCTAssertEqual(try first.readInbound(as: ByteBuffer.self), opened)
        // The gateway answers stream 1 only.
        var response = ByteBuffer()
        Self.frame(type: 0x1, streamID: 1, payload: [0x88], into: &response)
        try first.writeOutbound(IOData.byteBuffer(response))
        _ = try first.readOutbound(as: IOData.self)
        XCTAssertFalse(listener.isSpent(limit: 3))
        _ = try first.finish()
        XCTAssertTrue(listener.isSpent(limit: 3), "streams 3, 5 and 7 ended unanswered")

        let next = EmbeddedChannel()
        try next.pipeline.syncOperations.addHandler(HTTP2FloodGuard(listener: listener, prematureResetsPerSecond: 3))
        var settings = Self.preface
        Self.frame(type: 0x4, streamID: 0, into: &settings)
        try next.writeInbound(settings)
        XCTAssertEqual(try next.readInbound(as: ByteBuffer.self), settings, "a connection without streams is served")
        var stream = ByteBuffer()
        Self.frame(type: 0x1, streamID: 1, payload: [0x82], into: &stream)
        try next.writeInbound(stream)
        XCTAssertNil(try next.readInbound(as: ByteBuffer.self), "the new stream is refused")
        var goAway = try XCTUnwrap(next.readOutbound(as: IOData.self)).byteBuffer
        XCTAssertEqual(goAway.readBytes(length: 9), [0, 0, 8, 0x7, 0, 0, 0, 0, 0])
        XCTAssertEqual(goAway.readInteger(as: UInt32.self), 0, "last stream id: none processed")
        XCTAssertEqual(goAway.readInteger(as: UInt32.self), 0xB, "ENHANCE_YOUR_CALM")
        XCTAssertFalse(next.isActive)
    }
}

extension IOData {
    fileprivate var byteBuffer: ByteBuffer {
        guard case .byteBuffer(let buffer) = self else { preconditionFailure("not a buffer") }
        return buffer
    }
}
