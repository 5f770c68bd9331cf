import NIOHTTP1
import XCTest

@testable import SSEGateway

/// ``CredentialExtractor``: header, then cookie, then (when allowed) the query; and the redaction of
/// `access_token` from logged targets.
final class AuthCredentialExtractorTests: XCTestCase {
    private let extractor = CredentialExtractor(cookieName: "access_token", allowQueryToken: true)

    private func credential(
        _ headers: [(String, String)],
        query: Substring = "",
        extractor: CredentialExtractor? = nil
    ) -> Credential? {
        (extractor ?? self.extractor).credential(headers: HTTPHeaders(headers), query: query)
    }

    func testOrderHeaderThenCookieThenQuery() {
        let all: [(String, String)] = [("Authorization", "Bearer from-header"), ("Cookie", "access_token=from-cookie")]
        XCTAssertEqual(
            self.credential(all, query: "access_token=q"),
            Credential(token: "from-header", source: .authorizationHeader)
        )
        XCTAssertEqual(
            self.credential([("Cookie", "access_token=from-cookie")], query: "access_token=q"),
            Credential(token: "from-cookie", source: .cookie)
        )
        XCTAssertEqual(
            self.credential([], query: "a=1&access_token=from-query"),
            Credential(token: "from-query", source: .query)
        )
        XCTAssertNil(self.credential([], query: "a=1"))
        XCTAssertNil(self.credential([]))
    }

    func testBearerHeaderDialects() {
        let table: [(String, String?, UInt)] = [
            ("Bearer abc.def.ghi", "abc.def.ghi", #line),
            ("bearer abc", "abc", #line),
            ("BEARER   abc  ", "abc", #line),
            ("Bearer\tabc", "abc", #line),
            // Present but empty: a credential the verifier refuses, not an anonymous request.
            ("Bearer ", "", #line),
            ("Bearer", "", #line),
            ("Basic dXNlcjpwdw==", nil, #line),
            ("Bearerabc", nil, #line),
        ]
        for (value, token, line) in table {
            XCTAssertEqual(self.credential([("Authorization", value)])?.token, token, value, line: line)
        }
        // A Basic header does not hide the cookie behind it.
        XCTAssertEqual(
            self.credential([("Authorization", "Basic dXNlcjpwdw=="), ("Cookie", "access_token=c")]),
            Credential(token: "c", source: .cookie)
        )
    }

    func testCookieParsing() {
        let table: [(String, String?, UInt)] = [
            ("access_token=t1", "t1", #line),
            ("a=1; access_token=t2; b=2", "t2", #line),
            ("a=1;access_token=t3", "t3", #line),
            ("access_token=\"t4\"", "t4", #line),
            ("my_access_token=x; access_token=t5", "t5", #line),
            ("access_token_old=x", nil, #line),
            ("xaccess_token=x", nil, #line),
            ("other=access_token=x", nil, #line),
            ("access_token=a=b", "a=b", #line),
            ("access_token=first; access_token=second", "first", #line),
        ]
        for (cookie, token, line) in table {
            XCTAssertEqual(self.credential([("Cookie", cookie)])?.token, token, cookie, line: line)
        }
        // HTTP/2 splits cookies over several fields.
        XCTAssertEqual(self.credential([("cookie", "a=1"), ("cookie", "access_token=split")])?.token, "split")
        // No cookie name configured: cookies are not looked at.
        XCTAssertNil(self.credential([("Cookie", "access_token=t")], extractor: CredentialExtractor()))
    }

    func testQueryTokenOnlyWhenAllowed() {
        let closed = CredentialExtractor(cookieName: "access_token")
        XCTAssertNil(self.credential([], query: "access_token=t", extractor: closed))
        XCTAssertEqual(self.credential([], query: "access_token=a%2Eb")?.token, "a.b")
        XCTAssertEqual(self.credential([], query: "access%5Ftoken=enc")?.token, "enc")
        XCTAssertEqual(self.credential([], query: "access_token")?.token, "")
        XCTAssertNil(self.credential([], query: "access_tokens=x&xaccess_token=y"))
    }

    func testRedactionForLogs() {
        let table: [(String, String, UInt)] = [
            ("/prices", "/prices", #line),
            ("/prices?a=1", "/prices?a=1", #line),
            ("/prices?access_token=secret", "/prices?access_token=REDACTED", #line),
            ("/prices?a=1&access_token=secret&b=2", "/prices?a=1&access_token=REDACTED&b=2", #line),
            ("/p?access_token=s1&access_token=s2", "/p?access_token=REDACTED&access_token=REDACTED", #line),
            ("/p?access%5Ftoken=secret", "/p?access%5Ftoken=REDACTED", #line),
            ("/p?access_tokens=keep", "/p?access_tokens=keep", #line),
            ("/p?access_token", "/p?access_token", #line),
            ("/p?&&access_token=s&", "/p?&&access_token=REDACTED&", #line),
        ]
        for (target, redacted, line) in table {
            XCTAssertEqual(CredentialExtractor.redactingQueryToken(target), redacted, target, line: line)
        }
    }
}
