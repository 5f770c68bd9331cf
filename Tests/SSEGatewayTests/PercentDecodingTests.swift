import XCTest

@testable import SSEGateway

/// One percent-decoder for path segments, query values and URL credentials, and what each caller does
/// with a malformed escape.
final class PercentDecodingTests: XCTestCase {
    func testDecodesEscapesInEitherCaseAndLeavesOtherBytes() {
        XCTAssertEqual(PercentDecoding.bytes("a%20b%2fc%2F"), Array("a b/c/".utf8))
        XCTAssertEqual(PercentDecoding.bytes("%C3%A9t%c3%a9"), Array("été".utf8))
        XCTAssertEqual(PercentDecoding.bytes("a+b"), Array("a+b".utf8), "`+` is a plus in a path")
        XCTAssertEqual(PercentDecoding.bytes("a+b%2B", plusAsSpace: true), Array("a b+".utf8), "and a space in a query")
        XCTAssertEqual(PercentDecoding.bytes(""), [])
        XCTAssertEqual(PercentDecoding.bytes("%00"), [0])
    }

    func testAMalformedEscapeIsNil() {
        for text: Substring in ["%", "%4", "%zz", "%4g", "a%", "%%41", "ab%2"] {
            XCTAssertNil(PercentDecoding.bytes(text), String(text))
        }
    }

    /// The callers agree on `%zz`: a path segment with it matches no feed (404), a query resume id keeps
    /// it as written, and URL credentials with it are a config error.
    func testWhatEachCallerDoesWithAMalformedEscape() throws {
        XCTAssertNil(PathTemplate.percentDecode("room%zz"))
        XCTAssertNil(PathTemplate.percentDecode("%FF"), "not UTF-8")
        XCTAssertEqual(PathTemplate.percentDecode("a%20b"), "a b")
        XCTAssertEqual(RequestRouter.queryResumeID("lastEventId=id%zz7"), "id%zz7")
        XCTAssertEqual(RequestRouter.queryResumeID("x=1&last_event_id=a%2Bb+c"), "a+b c")
        XCTAssertNil(UpstreamURL.decodedCredentials("bob:pa%zz"))
        XCTAssertEqual(UpstreamURL.decodedCredentials("bob:Pa55w0rd%40x"), Array("bob:Pa55w0rd@x".utf8))
    }
}
