import NIOCore
import NIOHTTP1
import XCTest

@testable import SSEGateway

/// What a forward-auth backend's status and grant header mean (``ForwardAuthAnswer``), and what the cache key
/// of a request is made of (``ForwardAuthKey``).
final class ForwardAuthAnswerTests: XCTestCase {
    private let rooms = try! PathTemplate(parsing: "/rooms/{room}")
    private let prices = try! PathTemplate(parsing: "/prices")

    private func decide(_ status: Int, _ grants: [String] = [], path: String, feed: PathTemplate) -> AuthDecision? {
        ForwardAuthAnswer(status: status, grantValues: grants)?
            .decision(path: path, feedTemplate: feed, recheck: .minutes(5))
    }

    func testStatuses() {
        let allowed = AuthDecision.allowed(AuthGrant(recheckAfter: .minutes(5)))
        for status in [200, 204, 299] {
            XCTAssertEqual(self.decide(status, path: "/prices", feed: self.prices), allowed)
        }
        XCTAssertEqual(
            self.decide(401, path: "/prices", feed: self.prices),
            .refused(AuthRefusal(status: 401, reason: "forward_401"))
        )
        XCTAssertEqual(
            self.decide(403, path: "/prices", feed: self.prices),
            .refused(AuthRefusal(status: 403, reason: "forward_403"))
        )
        for status in [100, 301, 302, 304, 400, 404, 407, 429, 500, 502, 503] {
            XCTAssertNil(ForwardAuthAnswer(status: status, grantValues: []), "\(status) is no answer")
        }
    }

    func testGrantHeaderNarrows() {
        let allowed = AuthDecision.allowed(AuthGrant(recheckAfter: .minutes(5)))
        let grants = ["/prices, /rooms/{room}", "/news/*"]
        XCTAssertEqual(self.decide(200, grants, path: "/prices", feed: self.prices), allowed)
        XCTAssertEqual(self.decide(200, grants, path: "/rooms/42", feed: self.rooms), allowed)
        XCTAssertEqual(self.decide(200, grants, path: "/news/today", feed: self.prices), allowed)
        XCTAssertEqual(self.decide(200, grants, path: "/orders", feed: self.prices), .refused(.forbidden))
        XCTAssertEqual(self.decide(200, ["/rooms/7"], path: "/rooms/42", feed: self.rooms), .refused(.forbidden))
        // Present but empty narrows to nothing.
        XCTAssertEqual(self.decide(200, [""], path: "/prices", feed: self.prices), .refused(.forbidden))
        XCTAssertEqual(self.decide(200, [" , "], path: "/prices", feed: self.prices), .refused(.forbidden))
        // A pattern the gateway cannot read refuses rather than allowing more than the backend meant.
        XCTAssertEqual(
            self.decide(200, ["/prices, rooms"], path: "/prices", feed: self.prices),
            .refused(AuthRefusal(status: 403, reason: "forward_bad_grant"))
        )
        // The header only matters on an allow.
        XCTAssertEqual(
            self.decide(401, ["/prices"], path: "/prices", feed: self.prices),
            .refused(AuthRefusal(status: 401, reason: "forward_401"))
        )
    }

    func testKeySeparatesCredentialsAndPaths() {
        func key(_ headers: [(String, String)], _ path: String = "/prices") -> ForwardAuthKey {
            ForwardAuthKey(headers: HTTPHeaders(headers), path: path)
        }
        XCTAssertEqual(key([("Cookie", "s=1")]), key([("cookie", "s=1")]), "header names are case-insensitive")
        XCTAssertEqual(
            key([("Cookie", "s=1"), ("X-Other", "x")]),
            key([("Cookie", "s=1")]),
            "only Cookie and Authorization count"
        )
        let distinct = [
            key([]),
            key([("Cookie", "s=1")]),
            key([("Cookie", "s=2")]),
            key([("Authorization", "s=1")]),
            key([("Cookie", "s=1"), ("Cookie", "t=2")]),
            key([("Cookie", "s=1, t=2")]),
            key([("Cookie", "s=1"), ("Authorization", "Bearer a")]),
            key([("Cookie", "s=1")], "/rooms/1"),
        ]
        XCTAssertEqual(Set(distinct).count, distinct.count)
    }
}
