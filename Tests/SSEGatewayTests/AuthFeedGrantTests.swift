import XCTest

@testable import SSEGateway

/// ``FeedGrant`` parsing and matching as a table: exact paths, `*` for one segment, `{name}` for a
/// template feed's values only.
final class AuthFeedGrantTests: XCTestCase {
    func testMatchingTable() throws {
        let rooms = try PathTemplate(parsing: "/rooms/{room}")
        let userRooms = try PathTemplate(parsing: "/users/{user}/rooms/{room}")
        // (pattern, path, feed template, allowed)
        let table: [(String, String, PathTemplate?, Bool, UInt)] = [
            ("/prices", "/prices", nil, true, #line),
            ("/prices", "/prices/", nil, false, #line),
            ("/prices", "/prices/eur", nil, false, #line),
            ("/prices", "/Prices", nil, false, #line),
            ("/prices", "/", nil, false, #line),
            ("/", "/", nil, true, #line),
            ("/rooms/*", "/rooms/lobby", nil, true, #line),
            ("/rooms/*", "/rooms/lobby", rooms, true, #line),
            ("/rooms/*", "/rooms/", nil, false, #line),
            ("/rooms/*", "/rooms", nil, false, #line),
            ("/rooms/*", "/rooms/a/b", nil, false, #line),
            ("/*", "/prices", nil, true, #line),
            ("/*", "/rooms/a", nil, false, #line),
            ("/rooms/{room}", "/rooms/lobby", rooms, true, #line),
            // A static feed at the same path is not a value of the template.
            ("/rooms/{room}", "/rooms/lobby", nil, false, #line),
            ("/rooms/{room}", "/rooms/", rooms, false, #line),
            ("/rooms/{id}", "/rooms/lobby", rooms, false, #line),
            ("/rooms/lobby", "/rooms/lobby", rooms, true, #line),
            ("/rooms/lobby", "/rooms/kitchen", rooms, false, #line),
            ("/users/{user}/rooms/*", "/users/ann/rooms/7", userRooms, true, #line),
            ("/users/ann/rooms/{room}", "/users/ann/rooms/7", userRooms, true, #line),
            ("/users/ann/rooms/{room}", "/users/bob/rooms/7", userRooms, false, #line),
            ("/users/{room}/rooms/*", "/users/ann/rooms/7", userRooms, false, #line),
            ("/prices", "prices", nil, false, #line),
        ]
        for (pattern, path, template, allowed, line) in table {
            let grant = try FeedGrant(parsing: pattern)
            XCTAssertEqual(
                grant.allows(path: path, feedTemplate: template),
                allowed,
                "\(pattern) vs \(path) (template \(template?.description ?? "none"))",
                line: line
            )
        }
    }

    func testPatternsThatDoNotParse() {
        let table: [(String, String, UInt)] = [
            ("prices", "must start with '/'", #line),
            ("", "must start with '/'", #line),
            ("/rooms/a*", "'*' and '{name}' must be whole segments", #line),
            ("/rooms/{room", "'*' and '{name}' must be whole segments", #line),
            ("/rooms/{}", "'*' and '{name}' must be whole segments", #line),
            ("/rooms/{a b}", "bad placeholder name '{a b}'", #line),
            ("/prices?x=1", "must not contain '?' or '#'", #line),
        ]
        for (pattern, message, line) in table {
            XCTAssertThrowsError(try FeedGrant(parsing: pattern), line: line) { error in
                XCTAssertEqual((error as? FeedGrantError)?.message, message, pattern, line: line)
            }
        }
    }

    func testVerifiedTokenAllowsWhenAnyGrantDoes() throws {
        let token = VerifiedToken(
            expiresAt: nil,
            subject: nil,
            grants: [try FeedGrant(parsing: "/prices"), try FeedGrant(parsing: "/rooms/*")]
        )
        XCTAssertTrue(token.allows(path: "/prices"))
        XCTAssertTrue(token.allows(path: "/rooms/a"))
        XCTAssertFalse(token.allows(path: "/orders"))
        XCTAssertFalse(VerifiedToken(expiresAt: nil, subject: nil, grants: []).allows(path: "/prices"))
    }
}
