import NIOCore
import SSE
import XCTest

@testable import SSEGateway

/// The id rewriting of multi-feed responses as a plain value: the shared buffer's `id:` line is replaced
/// (raw and chunked framing), other buffers pass unchanged, and an id that would pass the bound is not taken.
final class CompositeIDRewriterTests: XCTestCase {
    private func encoded(_ id: String?, data: String? = "x") -> EncodedEvent {
        EncodedEvent(
            sequence: 1,
            event: ServerSentEvent(id: id, data: data),
            receivedAt: .now(),
            allocator: ByteBufferAllocator()
        )
    }

    private func joined(_ parts: (head: ByteBuffer, rest: ByteBuffer)?) -> String? {
        parts.map { String(buffer: $0.head) + String(buffer: $0.rest) }
    }

    func testTheIDLineCarriesEveryFeedsLastID() {
        var rewriter = CompositeIDRewriter(ids: CompositeID(ids: ["3", ""]), maxLength: 100)
        let raw = rewriter.rewrite(self.encoded("7").payload, from: 1, framing: .raw)
        XCTAssertEqual(self.joined(raw), "id: m1:3,7\ndata: x\n\n")
        let chunked = rewriter.rewrite(self.encoded("4").chunk, from: 0, framing: .chunked)
        let event = "id: m1:4,7\ndata: x\n\n"
        XCTAssertEqual(self.joined(chunked), String(event.utf8.count, radix: 16) + "\r\n" + event + "\r\n")
        XCTAssertEqual(rewriter.ids.ids, ["4", "7"])
    }

    func testBuffersWithoutAnIDPassUnchanged() {
        var rewriter = CompositeIDRewriter(ids: CompositeID(feeds: 2), maxLength: 100)
        XCTAssertNil(rewriter.rewrite(self.encoded(nil).payload, from: 0, framing: .raw))
        XCTAssertNil(rewriter.rewrite(ByteBuffer(string: ": keepalive\n\n"), from: 0, framing: .raw))
        XCTAssertEqual(rewriter.ids.ids, ["", ""])
    }

    func testAnIDOverTheBoundIsNotTaken() {
        var rewriter = CompositeIDRewriter(ids: CompositeID(ids: ["1", "2"]), maxLength: 12)
        let long = rewriter.rewrite(self.encoded(String(repeating: "9", count: 20)).payload, from: 0, framing: .raw)
        XCTAssertEqual(self.joined(long), "id: m1:1,2\ndata: x\n\n", "the last composite that fit")
        XCTAssertFalse(rewriter.replaceAll(CompositeID(ids: ["1234567890", "7"])))
        XCTAssertTrue(rewriter.replaceAll(CompositeID(ids: ["5", "6"])))
        XCTAssertEqual(rewriter.ids.encoded, "m1:5,6")
    }
}
