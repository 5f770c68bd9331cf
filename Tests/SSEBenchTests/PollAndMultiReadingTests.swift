import NIOCore
import XCTest

@testable import SSEBench

/// What poll and multi-feed clients read beyond a plain stream, as plain values: `id:` and `retry:`
/// fields, seq numbers followed per feed by the composite ids, and a poll client's round of responses.
final class PollAndMultiReadingTests: XCTestCase {
    /// Finished events of `text`, scanned with fields read, split at `split` (nil: whole).
    private func scan(_ text: String, split: Int? = nil) -> (SSEEventScanner, [ScannedDelivery]) {
        var scanner = SSEEventScanner(readsFields: true)
        var deliveries: [ScannedDelivery] = []
        let bytes = Array(text.utf8)
        let pieces = split.map { [Array(bytes[..<$0]), Array(bytes[$0...])] } ?? [bytes]
        for piece in pieces {
            piece.withUnsafeBytes { raw in
                do {
                    try scanner.scan(raw) { deliveries.append($0) }
                } catch {
                    XCTFail("\(error)")
                }
            }
        }
        return (scanner, deliveries)
    }

    // MARK: Fields

    func testIDAndRetryFieldsAreReadAsEventSourceKeepsThem() {
        let text =
            "retry: 250\n\nid: 41\n\n" + "id: 42\ndata: {\"seq\":42,\"ts\":7}\n\n"
            + "id:43\r\ndata: {\"seq\":43}\r\n\r\n" + ": gap comment\n\nretry: x1\n\n"
        for split in [nil] + Array(0...text.utf8.count) {
            let (scanner, deliveries) = self.scan(text, split: split)
            XCTAssertEqual(
                deliveries,
                [
                    ScannedDelivery(seq: 42, sentMicros: 7, missedBefore: 0, id: "42"),
                    ScannedDelivery(seq: 43, sentMicros: nil, missedBefore: 0, id: "43"),
                ],
                "split at \(split ?? -1)"
            )
            XCTAssertEqual(scanner.lastEventID, "43", "the last id, with or without the space after the colon")
            XCTAssertEqual(scanner.retryMillis, 250, "a retry that is not all digits is ignored")
        }
    }

    func testAnIDOnlyBlockMovesTheLastIDWithoutADelivery() {
        let (scanner, deliveries) = self.scan("retry: 300\n\nid: m1:41,%2C,\n\n")
        XCTAssertEqual(deliveries, [])
        XCTAssertEqual(scanner.lastEventID, "m1:41,%2C,")
        XCTAssertEqual(scanner.retryMillis, 300)
        XCTAssertEqual(self.scan("id: 5\n\nid\n\nid:\n\n").0.lastEventID, "", "an empty id resets it")
        XCTAssertEqual(self.scan("id: 5\n\nid: a\u{0}b\n\n").0.lastEventID, "5", "an id with NUL is ignored")
    }

    func testPlainScannerReadsNoFields() throws {
        var scanner = SSEEventScanner()
        var ids: [String?] = []
        try Array("retry: 9\n\nid: 1\ndata: {\"seq\":1}\n\n".utf8).withUnsafeBytes {
            try scanner.scan($0) { ids.append($0.id) }
        }
        XCTAssertEqual(ids, [nil])
        XCTAssertNil(scanner.lastEventID)
        XCTAssertNil(scanner.retryMillis)
    }

    // MARK: Seq numbers

    func testSeqTrackerCountsGapsAndDuplicates() {
        var tracker = SeqTracker()
        let steps = [5, 6, 9, 9, 7, 10].map { tracker.record(Int64($0)) }
        XCTAssertEqual(steps.map(\.missed), [0, 0, 2, 0, 0, 0])
        XCTAssertEqual(steps.map(\.duplicate), [false, false, false, true, true, false])
    }

    func testScannerMarksARepeatedSeqAsDuplicate() {
        let text = [1, 2, 2, 3].map { "data: {\"seq\":\($0)}\n\n" }.joined()
        XCTAssertEqual(self.scan(text).1.map(\.duplicate), [false, false, true, false])
    }

    // MARK: Multi-feed ids

    /// Five feeds fed by one origin carry the same seq numbers: interleaved, they are neither gaps nor
    /// duplicates, because each is followed within its own feed.
    func testFeedsWithTheSameSeqNumbersAreNoGapsAndNoDuplicates() {
        var tracker = MultiFeedTracker()
        var ids = Array(repeating: "", count: 5)
        var attributions: [MultiFeedTracker.Attribution] = []
        for seq in 7...9 {
            for feed in [2, 0, 4, 1, 3] {
                ids[feed] = String(seq)
                attributions.append(tracker.record(id: "m1:" + ids.joined(separator: ","), seq: Int64(seq)))
            }
        }
        XCTAssertEqual(
            attributions,
            (7...9).flatMap { _ in [2, 0, 4, 1, 3] }.map { .feed(index: $0, step: .init(missed: 0, duplicate: false)) }
        )
    }

    func testAGapOrARepeatInOneFeedIsThatFeedsOnly() {
        var tracker = MultiFeedTracker()
        XCTAssertEqual(tracker.record(id: "m1:1,", seq: 1), .feed(index: 0, step: .init(missed: 0, duplicate: false)))
        XCTAssertEqual(tracker.record(id: "m1:1,1", seq: 1), .feed(index: 1, step: .init(missed: 0, duplicate: false)))
        XCTAssertEqual(tracker.record(id: "m1:4,1", seq: 4), .feed(index: 0, step: .init(missed: 2, duplicate: false)))
        XCTAssertEqual(tracker.record(id: "m1:4,2", seq: 2), .feed(index: 1, step: .init(missed: 0, duplicate: false)))
        XCTAssertEqual(tracker.record(id: "m1:3,2", seq: 3), .feed(index: 0, step: .init(missed: 0, duplicate: true)))
    }

    func testEventsNoCompositeIDTiesToOneFeedAreUnattributed() {
        var tracker = MultiFeedTracker()
        XCTAssertEqual(tracker.record(id: nil, seq: 1), .unattributed, "no id")
        XCTAssertEqual(tracker.record(id: "17", seq: 1), .unattributed, "a plain id")
        XCTAssertEqual(tracker.record(id: "m1:3,4", seq: 4), .unattributed, "a resumed stream: both parts new")
        XCTAssertEqual(tracker.record(id: "m1:3,4", seq: 4), .unattributed, "no part changed")
        XCTAssertEqual(tracker.record(id: "m1:3,5", seq: 5), .feed(index: 1, step: .init(missed: 0, duplicate: false)))
    }

    func testMultiReceiverCountsPerFeedAndNoFalseGaps() throws {
        let loop = BenchLoopTally()
        var receiver = BenchStreamReceiver(loop: loop, mode: BenchClientMode(multi: true))
        receiver.requestSent()
        XCTAssertTrue(receiver.head(status: 200, gzip: false))
        var body = ""
        var ids = ["", "", ""]
        for seq in 1...4 where seq != 3 {
            for feed in 0..<3 {
                ids[feed] = String(seq)
                body += "id: m1:\(ids.joined(separator: ","))\ndata: {\"seq\":\(seq),\"ts\":1}\n\n"
            }
        }
        body += "data: {\"seq\":4}\n\n"  // no id: tied to no feed
        try receiver.body(ByteBuffer(string: body))
        XCTAssertEqual(loop.tally.events, 10)
        XCTAssertEqual(loop.tally.feedEvents, [3, 3, 3])
        XCTAssertEqual(loop.tally.unattributed, 1)
        XCTAssertEqual(loop.tally.missing, 3, "seq 3 of each feed")
        XCTAssertEqual(loop.tally.duplicates, 0)
    }

    // MARK: A poll client's round

    func testPollClientAsksAgainWithTheLastIDAfterRetryAndCountsPolls() throws {
        let loop = BenchLoopTally()
        var receiver = BenchStreamReceiver(loop: loop, mode: BenchClientMode(poll: true))
        receiver.requestSent()
        XCTAssertEqual(loop.tally.awaitingHead, 1)
        XCTAssertTrue(receiver.head(status: 200, gzip: false))
        try receiver.body(ByteBuffer(string: "retry: 250\n\nid: 41\n\n"))
        XCTAssertEqual(receiver.responseEnded(), .init(delayMillis: 250, lastEventID: "41"))
        XCTAssertEqual(loop.tally.polls, 1)
        XCTAssertEqual(loop.tally.events, 0, "the id-only start is no delivery")

        receiver.requestSent()
        XCTAssertEqual(loop.tally.awaitingHead, 0, "a waiting poll is not a client without a response")
        XCTAssertEqual(loop.tally.connected, 1)
        XCTAssertTrue(receiver.head(status: 200, gzip: false))
        try receiver.body(
            ByteBuffer(string: "retry: 200\n\nid: 42\ndata: {\"seq\":42}\n\nid: 43\ndata: {\"seq\":43}\n\n")
        )
        XCTAssertEqual(receiver.responseEnded(), .init(delayMillis: 200, lastEventID: "43"))

        receiver.requestSent()
        XCTAssertTrue(receiver.head(status: 200, gzip: false))
        try receiver.body(ByteBuffer(string: "id: 43\ndata: {\"seq\":43}\n\nid: 46\ndata: {\"seq\":46}\n\n"))
        XCTAssertEqual(receiver.responseEnded(), .init(delayMillis: 200, lastEventID: "46"), "retry: is kept")
        XCTAssertEqual(loop.tally.polls, 3)
        XCTAssertEqual(loop.tally.events, 4)
        XCTAssertEqual(loop.tally.duplicates, 1, "43 again")
        XCTAssertEqual(loop.tally.missing, 2, "44 and 45")
        XCTAssertEqual(
            loop.tally.missingSamples,
            ["seq 46 (id 46) came after seq 43, poll after Last-Event-ID 43"],
            "where they went missing, with what the poll asked for"
        )
        XCTAssertEqual(loop.tally.opened, 1, "one connection opened")
        XCTAssertEqual(loop.tally.pollWaitMicros.totalCount, 2, "the later polls' time at the server")

        receiver.requestSent()
        XCTAssertFalse(receiver.head(status: 503, gzip: false))
        XCTAssertEqual(loop.tally.badStatus, 1)
        XCTAssertEqual(loop.tally.connected, 0)
        receiver.closed()
        XCTAssertEqual(loop.tally.disconnects, 0, "a refused poll is a non-200, not also a disconnect")
    }

    /// ssegate answers an `EventSource` over its connection rate with a 200 that carries only `retry:` and
    /// a `Retry-After`: a reconnecting client counts it as a refusal and waits, not as an opened stream.
    func testAReconnectingClientCountsA200WithRetryAfterAsARefusal() {
        let loop = BenchLoopTally()
        var receiver = BenchStreamReceiver(loop: loop, mode: BenchClientMode(reconnect: true))
        receiver.requestSent()
        XCTAssertFalse(receiver.head(status: 200, gzip: false, retryAfterSeconds: 2))
        XCTAssertEqual(loop.tally.refusals, 1)
        XCTAssertEqual(loop.tally.opened, 0)
        XCTAssertEqual(loop.tally.badStatus, 0)
        XCTAssertEqual(receiver.nextAttempt(), 2000, "it waits the Retry-After")
        receiver.requestSent()
        XCTAssertTrue(receiver.head(status: 200, gzip: false), "a 200 without Retry-After is a stream")
        XCTAssertEqual(loop.tally.opened, 1)
    }

    func testMissingSamplesAreBoundedWhenTalliesAreAdded() {
        var total = BenchTally()
        for loop in 0..<3 {
            var tally = BenchTally()
            for index in 0..<15 { tally.sampleMissing("loop \(loop) #\(index)") }
            XCTAssertEqual(tally.missingSamples.count, 15)
            total.add(tally)
        }
        XCTAssertEqual(total.missingSamples.count, BenchTally.missingSampleLimit)
        XCTAssertEqual(total.missingSamples.first, "loop 0 #0")
        XCTAssertEqual(total.missingSamples.last, "loop 1 #4")
    }

    func testPollClientClosedBetweenPollsIsADisconnectAndAStreamIsNoPoll() {
        let loop = BenchLoopTally()
        var receiver = BenchStreamReceiver(loop: loop, mode: BenchClientMode(poll: true))
        receiver.requestSent()
        XCTAssertTrue(receiver.head(status: 200, gzip: false))
        XCTAssertEqual(receiver.responseEnded(), .init(delayMillis: BenchStreamReceiver.defaultRetryMillis))
        receiver.closed()
        XCTAssertEqual(loop.tally.connected, 0)
        XCTAssertEqual(loop.tally.disconnects, 1)

        var stream = BenchStreamReceiver(loop: loop)
        stream.requestSent()
        XCTAssertTrue(stream.head(status: 200, gzip: false))
        XCTAssertNil(stream.responseEnded(), "a stream that ends is closed, not polled again")
    }

    func testPollTransportIsAddedToTheURLOnceAndNotOverHTTP2() throws {
        for (url, target) in [
            ("http://h/feed", "/feed?transport=poll"), ("http://h/feed?a=1", "/feed?a=1&transport=poll"),
            ("http://h/feed?transport=poll", "/feed?transport=poll"), ("http://h/feed?", "/feed?transport=poll"),
        ] {
            var options = BenchOptions(url: url)
            options.mode.poll = true
            XCTAssertEqual(try options.validated().target, target)
        }
        var options = BenchOptions(url: "http://h/feed")
        options.mode.poll = true
        options.http2 = true
        XCTAssertThrowsError(try options.validated())
        var multi = BenchOptions(url: "http://h/multi?feed=/a&feed=/b&event=x")
        multi.mode.multi = true
        XCTAssertEqual(multi.feedsPerClient, 2)
    }

    func testRequestCarriesLastEventIDOnlyWhenThereIsOne() {
        let request = BenchHTTP1Request(head: "GET /f HTTP/1.1\r\nHost: h\r\n")
        XCTAssertEqual(String(buffer: request.bytes(lastEventID: nil)), "GET /f HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(
            String(buffer: request.bytes(lastEventID: "m1:4,2")),
            "GET /f HTTP/1.1\r\nHost: h\r\nLast-Event-ID: m1:4,2\r\n\r\n"
        )
    }
}
