import Foundation
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// The config keys of issue 11's CORS and admin parts: `cors.allow_origins` patterns and `admin.token_file`,
/// loaded and refused with FILE:LINE:COLUMN.
final class AccessConfigTests: XCTestCase {
    static let token = "0123456789abcdef0123456789abcdef"

    // MARK: - cors.allow_origins

    func testSubdomainPatternsLoadWithCredentialsPerFeedAndInDefaults() throws {
        let config = try ConfigFixtures.parse(
            """
            defaults:
              cors: { allow_origins: ["https://*.example.com", "https://App.Example.org:443"], allow_credentials: true }
            feeds:
              - path: /a
                upstream: { url: http://up/a }
              - path: /b
                upstream: { url: http://up/b }
                cors: { allow_origins: ["http://*.localhost:3000"] }
            """
        )
        let a = config.feeds[0].settings.cors
        XCTAssertEqual(
            a.allowOrigins,
            [.subdomains(scheme: "https", suffix: "example.com", port: nil), .exact("https://app.example.org")]
        )
        XCTAssertTrue(a.allowCredentials)
        let b = config.feeds[1].settings.cors
        XCTAssertEqual(b.allowOrigins, [.subdomains(scheme: "http", suffix: "localhost", port: 3000)])
        XCTAssertTrue(b.allowCredentials, "allow_credentials is inherited key by key")
    }

    func testMalformedPatternsAreErrorsAtTheirEntry() {
        let cases: [(String, String)] = [
            ("https://*", "a wildcard needs a domain after it, as in https://*.example.com"),
            ("*.example.com", "expected '*' or an origin such as https://app.example.com or https://*.example.com"),
            ("https://a*.example.com", "a wildcard must be the whole leftmost label, as in https://*.example.com"),
        ]
        for (entry, message) in cases {
            let flow = ConfigFixtures.errors("defaults:\n  cors: { allow_origins: [\"\(entry)\"] }\n")
            XCTAssertEqual(flow.count, 1, "\(flow)")
            XCTAssertTrue(
                flow.first?.description.hasPrefix("test.yaml:2:27: defaults.cors.allow_origins[0]: \(message)") == true,
                "\(flow)"
            )
            let block = ConfigFixtures.errors(
                """
                feeds:
                  - path: /a
                    upstream: { url: http://up/a }
                    cors:
                      allow_origins:
                        - https://app.example.com
                        - "\(entry)"
                """
            )
            XCTAssertEqual(block.count, 1, "\(block)")
            XCTAssertTrue(
                block.first?.description.hasPrefix("test.yaml:7:11: feeds[0].cors.allow_origins[1]: \(message)")
                    == true,
                "\(block)"
            )
            XCTAssertTrue(block.first?.description.hasSuffix("got '\(entry)'") == true, "\(block)")
        }
    }

    func testWildcardWithCredentialsIsStillAnError() {
        ConfigFixtures.assertSingleError(
            """
            defaults:
              cors:
                allow_origins: ["https://*.example.com", "*"]
                allow_credentials: true
            """,
            line: 4,
            column: 24,
            "allow_credentials cannot be true with allow_origins '*'"
        )
    }

    // MARK: - admin.token_file

    func testTokenFileIsReadWithItsTrailingLineBreakDropped() throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        try FileManager.default.createDirectory(atPath: directory + "/secrets", withIntermediateDirectories: true)
        for content in [Self.token, Self.token + "\n", Self.token + "\r\n"] {
            try content.write(toFile: directory + "/secrets/admin.token", atomically: true, encoding: .utf8)
            let config = try ConfigFixtures.parse(
                "admin: { address: \"127.0.0.1:9090\", token_file: secrets/admin.token }\n",
                baseDirectory: directory
            )
            let token = try XCTUnwrap(config.admin?.token, content.debugDescription)
            XCTAssertTrue(token.accepts(Self.token.utf8), content.debugDescription)
            XCTAssertFalse(token.accepts((Self.token + "\n").utf8))
            XCTAssertFalse("\(config)".contains(Self.token), "a config never prints the token")
        }
        let open = try ConfigFixtures.parse("admin: { address: \"127.0.0.1:9090\", token_file: null }\n")
        XCTAssertNil(open.admin?.token)
        XCTAssertNotNil(open.admin)
    }

    func testUnusableTokenFilesAreErrorsAtTheKey() throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        let files: [(String, String)] = [
            ("empty.token", ""),
            ("newline.token", "\n"),
            ("short.token", "abc123\n"),
            ("spaces.token", "0123456789abcdef 0123456789abcdef\n"),
            ("twolines.token", "0123456789abcdef\n0123456789abcdef\n"),
        ]
        for (name, content) in files {
            try content.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        }
        let cases: [(String, String)] = [
            ("empty.token", "is empty"),
            ("newline.token", "is empty"),
            ("short.token", "at least 16 characters"),
            ("spaces.token", "one line of letters, digits"),
            ("twolines.token", "one line of letters, digits"),
            ("missing.token", "does not exist"),
        ]
        for (name, message) in cases {
            ConfigFixtures.assertSingleError(
                """
                admin:
                  address: 127.0.0.1:9090
                  token_file: \(name)
                """,
                line: 3,
                column: 15,
                "admin.token_file: ",
                baseDirectory: directory
            )
            let errors = ConfigFixtures.errors(
                "admin:\n  address: 127.0.0.1:9090\n  token_file: \(name)\n",
                baseDirectory: directory
            )
            XCTAssertTrue(errors.first?.message.contains(message) == true, "\(name): \(errors)")
            XCTAssertFalse(errors.description.contains("0123456789abcdef"), "the file's content is never quoted")
        }
    }

    func testTokenComparisonNeedsTheWholeTokenAndNothingMore() throws {
        let token = try AdminToken(Self.token)
        XCTAssertTrue(token.accepts(Self.token.utf8))
        XCTAssertFalse(token.accepts(Self.token.dropLast().utf8))
        XCTAssertFalse(token.accepts((Self.token + "0").utf8))
        XCTAssertFalse(token.accepts((Self.token + Self.token).utf8))
        XCTAssertFalse(token.accepts("".utf8))
        XCTAssertFalse(token.accepts(Self.token.uppercased().utf8))
        XCTAssertEqual("\(token)", "AdminToken(redacted)")
    }
}
