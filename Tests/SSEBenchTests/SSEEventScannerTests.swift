import XCTest

@testable import SSEBench

/// The load client's event scanner: event ends found across any split of the input, `\r\n\r\n` ends,
/// comments and retry lines not counted, the `"seq":`/`"ts":` numbers read, gaps counted as missing.
final class SSEEventScannerTests: XCTestCase {
    private func event(seq: Int, ts: Int, lineEnd: String = "\n") -> String {
        "id: \(seq)\(lineEnd)data: {\"seq\":\(seq),\"ts\":\(ts),\"pad\":\"xx\\\"seq\\\":\"}\(lineEnd)\(lineEnd)"
    }

    /// Deliveries from scanning `text` in pieces of the given sizes (the rest in one piece).
    private func scan(_ text: String, pieces: [Int] = []) -> [ScannedDelivery] {
        var scanner = SSEEventScanner()
        var deliveries: [ScannedDelivery] = []
        var bytes = Array(text.utf8)[...]
        for size in pieces + [bytes.count] where !bytes.isEmpty {
            let piece = Array(bytes.prefix(size))
            bytes = bytes.dropFirst(size)
            piece.withUnsafeBytes { bytes in
                do {
                    try scanner.scan(bytes) { deliveries.append($0) }
                } catch {
                    XCTFail("\(error)")
                }
            }
        }
        return deliveries
    }

    private var stream: String {
        "retry: 3000\n\n" + self.event(seq: 1, ts: 1_000) + ": keepalive\n\n" + self.event(seq: 2, ts: 2_000)
            + self.event(seq: 3, ts: 3_000, lineEnd: "\r\n") + ": comment with \"seq\":99 in it\n\n"
            + self.event(seq: 4, ts: 4_000)
    }

    private let expected = [1, 2, 3, 4].map {
        ScannedDelivery(seq: Int64($0), sentMicros: Int64($0 * 1_000), missedBefore: 0)
    }

    func testEventsWithSeqAreDeliveriesAndCommentsAreNot() {
        XCTAssertEqual(self.scan(self.stream), self.expected)
        XCTAssertEqual(self.scan(": keepalive\n\nretry: 3000\n\nevent: x\ndata: {}\n\n: \"seq\":5\n\n"), [])
        XCTAssertEqual(self.scan(": note\ndata: {\"seq\":5}\n\n").map(\.seq), [5], "a comment line before the data")
    }

    func testSplitAtEveryOffsetAndByteByByteGivesTheSameDeliveries() {
        let text =
            "retry: 3000\n\n" + self.event(seq: 1, ts: 10) + self.event(seq: 2, ts: 20, lineEnd: "\r\n")
            + ": ka\r\n\r\n" + self.event(seq: 3, ts: 30)
        let whole = self.scan(text)
        XCTAssertEqual(whole.map(\.seq), [1, 2, 3])
        XCTAssertEqual(whole.map(\.sentMicros), [10, 20, 30])
        for offset in 0...text.utf8.count {
            XCTAssertEqual(self.scan(text, pieces: [offset]), whole, "split at \(offset)")
            for second in stride(from: offset, through: text.utf8.count, by: 7) {
                XCTAssertEqual(
                    self.scan(text, pieces: [offset, second - offset]),
                    whole,
                    "split at \(offset) and \(second)"
                )
            }
        }
        XCTAssertEqual(self.scan(text, pieces: Array(repeating: 1, count: text.utf8.count)), whole, "byte by byte")
    }

    func testCRLFEndsAndAnUnfinishedEventIsHeldBack() {
        XCTAssertEqual(self.scan(self.event(seq: 7, ts: 70, lineEnd: "\r\n")).map(\.seq), [7])
        let unfinished = "data: {\"seq\":8,\"ts\":80}\n"
        XCTAssertEqual(self.scan(unfinished), [], "no blank line yet")
        XCTAssertEqual(self.scan(unfinished + "\n").map(\.seq), [8])
        XCTAssertEqual(self.scan("data: {\"seq\":9,\"ts\":90}\r\n\r").map(\.seq), [], "CR LF CR is no end yet")
    }

    func testGapsInSeqAreCountedAsMissing() {
        let text = [1, 2, 5, 6, 9].map { self.event(seq: $0, ts: $0) }.joined()
        let deliveries = self.scan(text, pieces: [13, 40])
        XCTAssertEqual(deliveries.map(\.seq), [1, 2, 5, 6, 9])
        XCTAssertEqual(deliveries.map(\.missedBefore), [0, 0, 2, 0, 2])
        XCTAssertEqual(deliveries.reduce(0) { $0 + $1.missedBefore }, 4)
    }

    func testTimestampIsOptionalAndKeyOrderFree() {
        XCTAssertEqual(
            self.scan("data: {\"ts\":5,\"seq\":3}\n\n"),
            [ScannedDelivery(seq: 3, sentMicros: 5, missedBefore: 0)]
        )
        XCTAssertEqual(self.scan("data: {\"seq\":3}\n\n"), [ScannedDelivery(seq: 3, sentMicros: nil, missedBefore: 0)])
        XCTAssertEqual(self.scan("data: {\"seq\":\"x\"}\n\n"), [], "a seq that is no number is no delivery")
    }

    /// A body with lines but never a blank one (an HTML page read until close) is not held whole: once the
    /// unfinished event would pass 1 MiB the scan throws, after the events that did end, and lets it go.
    func testAnEventThatNeverEndsIsCappedAt1MiB() throws {
        var scanner = SSEEventScanner()
        var delivered: [Int64] = []
        let line = Array("<p>no blank line in a page</p>\n".utf8)
        let piece = Array(repeatElement(line, count: 64 * 1024 / line.count).joined())
        try Array("data: {\"seq\":1}\n\n<html>\n".utf8).withUnsafeBytes {
            try scanner.scan($0) { delivered.append($0.seq) }
        }
        var held = "<html>\n".utf8.count
        while held + piece.count <= SSEEventScanner.maximumTail {
            try piece.withUnsafeBytes { try scanner.scan($0) { delivered.append($0.seq) } }
            held += piece.count
        }
        XCTAssertThrowsError(try piece.withUnsafeBytes { try scanner.scan($0) { delivered.append($0.seq) } }) { error in
            XCTAssertEqual(error as? SSEEventScanner.EventTooLarge, SSEEventScanner.EventTooLarge())
        }
        XCTAssertEqual(delivered, [1], "the event that ended before the page was delivered")
        try Array("data: {\"seq\":2}\n\n".utf8).withUnsafeBytes { try scanner.scan($0) { delivered.append($0.seq) } }
        XCTAssertEqual(delivered, [1, 2], "nothing of the page is held after the throw")
    }
}
