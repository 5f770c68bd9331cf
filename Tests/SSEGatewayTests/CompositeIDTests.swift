import XCTest

@testable import SSEGateway

final class CompositeIDTests: XCTestCase {
    func testRoundTripKeepsEachFeedsID() {
        let id = CompositeID(ids: ["41", "a-7", ""])
        XCTAssertEqual(id.encoded, "m1:41,a-7,")
        XCTAssertEqual(CompositeID.decode(id.encoded, feeds: 3), id)
    }

    func testSeparatorsControlsAndNonASCIIInsideIDsAreEscaped() {
        let id = CompositeID(ids: ["a,b", "100%", "x y\u{7F}", "é", "m1:z"])
        let encoded = id.encoded
        XCTAssertEqual(encoded, "m1:a%2Cb,100%25,x%20y%7F,%C3%A9,m1:z")
        XCTAssertTrue(encoded.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "printable ASCII only: \(encoded)")
        XCTAssertEqual(CompositeID.decode(encoded, feeds: 5), id)
    }

    func testEmptyIDsAreNoResumeIDs() {
        let id = CompositeID(feeds: 2)
        XCTAssertEqual(id.encoded, "m1:,")
        XCTAssertEqual(CompositeID.decode("m1:,", feeds: 2)?.ids, ["", ""])
        XCTAssertEqual(CompositeID.decode("m1:", feeds: 1)?.ids, [""])
    }

    func testForeignOrMalformedIDsAreNotComposite() {
        XCTAssertNil(CompositeID.decode("41", feeds: 1), "a plain feed's id")
        XCTAssertNil(CompositeID.decode("m2:1,2", feeds: 2), "another version")
        XCTAssertNil(CompositeID.decode("m1:1,2", feeds: 3), "another number of feeds")
        XCTAssertNil(CompositeID.decode("m1:1%2", feeds: 1), "a cut escape")
        XCTAssertNil(CompositeID.decode("m1:1%G0", feeds: 1), "a broken escape")
        XCTAssertNil(CompositeID.decode("m1:%FF", feeds: 1), "not UTF-8")
        XCTAssertNil(CompositeID.decode("m1:a b", feeds: 1), "a raw space")
    }

    func testLengthBoundIsHalfTheHeaderLimit() {
        XCTAssertEqual(CompositeID.maxLength(maxHeaderBytes: 16 * 1024), 8 * 1024)
        let long = CompositeID(ids: [String(repeating: "9", count: 600), String(repeating: "8", count: 600)])
        XCTAssertGreaterThan(long.encoded.utf8.count, CompositeID.maxLength(maxHeaderBytes: 2048))
    }
}
