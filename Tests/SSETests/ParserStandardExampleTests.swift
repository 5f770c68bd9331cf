import SSE
import XCTest

/// The examples given in WHATWG HTML 9.2.6, each delivered whole, split at every offset and byte by byte.
final class ParserStandardExampleTests: XCTestCase {
    func testStockTickerMultiLineData() {
        assertParses(
            "data: YHOO\ndata: +2\ndata: 10\n\n",
            [event("YHOO\n+2\n10")]
        )
    }

    func testCommentsIDsAndUnterminatedFinalBlock() {
        // The last block has no blank line after it, so it is never dispatched.
        assertParses(
            ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n",
            [event(id: "1", "first event"), event(id: "", "second event")],
            lastEventID: ""
        )
    }

    func testEmptyDataLinesAndUnterminatedFinalBlock() {
        assertParses(
            "data\n\ndata\ndata\n\ndata:",
            [event(""), event("\n")]
        )
    }

    func testSpaceAfterColonIsOptional() {
        assertParses(
            "data:test\n\ndata: test\n\n",
            [event("test"), event("test")]
        )
    }

    func testEventTypeAndIDTogether() {
        assertParses(
            "event: add\ndata: 73857293\nid: 17\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
            [
                event(id: "17", type: "add", "73857293"),
                event(type: "remove", "2153"),
                event(type: "add", "113411"),
            ],
            lastEventID: "17"
        )
    }
}
