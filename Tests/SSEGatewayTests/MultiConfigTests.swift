import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

final class MultiConfigTests: XCTestCase {
    private let feed = """
        feeds:
          - path: /prices
            upstream: { url: http://127.0.0.1:1/prices }
          - path: /rooms/{room}
            upstream: { url: "http://127.0.0.1:1/rooms/{room}" }

        """

    func testDefaultsAndValues() throws {
        XCTAssertEqual(try ConfigFixtures.parse(self.feed).limits.multi, MultiConfig())
        let config = try ConfigFixtures.parse(self.feed + "multi: { path: /all, max_feeds: 5 }\n")
        XCTAssertEqual(config.limits.multi.path, "/all")
        XCTAssertEqual(config.limits.multi.maxFeeds, 5)
    }

    func testErrorsAtTheirLineAndColumn() {
        let errors = ConfigFixtures.errors(
            self.feed + """
                multi:
                  path: /rooms/lobby
                  max_feeds: 0
                  max_feed: 3
                """
        )
        XCTAssertEqual(
            errors.map(\.description),
            [
                "test.yaml:7:9: multi.path: '/rooms/lobby' is the path of feed '/rooms/{room}'; choose another path for multi",
                "test.yaml:8:14: multi.max_feeds: must be at least 1, got 0",
                "test.yaml:9:3: unknown key 'max_feed' in multi (did you mean 'max_feeds'?)",
            ]
        )
        XCTAssertEqual(
            ConfigFixtures.errors(self.feed + "multi: { path: multi }\n").map(\.description),
            ["test.yaml:6:16: multi.path: must be a plain path starting with '/', e.g. /multi"]
        )
    }
}
