import XCTest

@testable import SSEGateway

/// `cors.allow_origins` entries as values: what parses, what each form matches, and the headers built from them.
final class OriginPatternTests: XCTestCase {
    // MARK: - Parsing

    func testFormsAreParsedAndNormalizedAsBrowsersWriteOrigins() throws {
        let cases: [(String, OriginPattern)] = [
            ("*", .any),
            ("https://app.example.com", .exact("https://app.example.com")),
            ("HTTPS://App.Example.COM", .exact("https://app.example.com")),
            ("https://app.example.com:443", .exact("https://app.example.com")),
            ("http://app.example.com:80", .exact("http://app.example.com")),
            ("http://127.0.0.1:3000", .exact("http://127.0.0.1:3000")),
            ("http://[::1]:3000", .exact("http://[::1]:3000")),
            ("https://*.example.com", .subdomains(scheme: "https", suffix: "example.com", port: nil)),
            ("https://*.Example.com:8443", .subdomains(scheme: "https", suffix: "example.com", port: 8443)),
            ("https://*.example.com:443", .subdomains(scheme: "https", suffix: "example.com", port: nil)),
            ("http://*.localhost:3000", .subdomains(scheme: "http", suffix: "localhost", port: 3000)),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(try OriginPattern(parsing: text), expected, text)
        }
        XCTAssertEqual(
            OriginPattern.subdomains(scheme: "https", suffix: "example.com", port: 8443).description,
            "https://*.example.com:8443"
        )
    }

    func testMalformedPatternsSayWhatToWrite() {
        let cases: [(String, String)] = [
            ("https://*", "a wildcard needs a domain after it"),
            ("*.example.com", "expected '*' or an origin such as"),
            ("https://a*.example.com", "a wildcard must be the whole leftmost label"),
            ("https://a.*.example.com", "a wildcard must be the whole leftmost label"),
            ("https://*.*.example.com", "only one wildcard"),
            ("https://*.com", "at least two labels"),
            ("https://*..example.com", "is not a domain name"),
            ("https://*.example.com/", "no path"),
            ("https://app.example.com/", "no path"),
            ("https://user@app.example.com", "no path"),
            ("ftp://app.example.com", "expected '*' or an origin"),
            ("https://", "expected '*' or an origin"),
            ("https://app.example.com:", "the port must be a number"),
            ("https://app.example.com:99999", "the port must be a number"),
            ("https://*.example.com:x", "the port must be a number"),
            ("https://[::1", "closing ']'"),
            ("https://:443", "no host"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try OriginPattern(parsing: text), text) { error in
                let message2 = (error as? OriginPatternError)?.message ?? ""
                XCTAssertTrue(message2.contains(message), "\(text): \(message2)")
                XCTAssertTrue(message2.contains("'\(text)'"), "\(text): the message names the entry: \(message2)")
            }
        }
    }

    // MARK: - Matching

    func testSubdomainWildcardMatchesOnlyWholeLabelsOfTheSameSchemeAndPort() throws {
        let pattern = try OriginPattern(parsing: "https://*.example.com")
        for origin in [
            "https://a.example.com", "https://a.b.example.com", "https://A.Example.com", "https://x-1.example.com",
        ] {
            XCTAssertTrue(pattern.matches(origin), origin)
        }
        for origin in [
            "https://example.com", "https://evilexample.com", "http://a.example.com", "https://a.example.com:8443",
            "https://a.example.com.evil.net", "https://.example.com", "https://a..example.com", "null", "",
            "https://a.example.com/", "https://a.example.comx", "https://a.example.com:443x",
        ] {
            XCTAssertFalse(pattern.matches(origin), origin)
        }
        let withPort = try OriginPattern(parsing: "https://*.example.com:8443")
        XCTAssertTrue(withPort.matches("https://a.example.com:8443"))
        XCTAssertFalse(withPort.matches("https://a.example.com"))
        XCTAssertFalse(withPort.matches("https://a.example.com:84430"))
        XCTAssertFalse(withPort.matches("https://example.com:8443"))
    }

    func testExactOriginsMatchWholeAndIgnoreCase() throws {
        let pattern = try OriginPattern(parsing: "https://app.example.com")
        XCTAssertTrue(pattern.matches("https://app.example.com"))
        XCTAssertTrue(pattern.matches("https://APP.example.com"))
        for origin in [
            "https://app.example.com:8443", "http://app.example.com", "https://app.example.com.evil",
            "https://xapp.example.com", "https://a.app.example.com",
        ] {
            XCTAssertFalse(pattern.matches(origin), origin)
        }
        XCTAssertTrue(OriginPattern.any.matches("https://anything.example"))
    }

    // MARK: - Headers

    func testNoAllowOriginsMeansNoHeadersAtAll() {
        XCTAssertTrue(RequestRouter.corsHeaders(origin: "https://a.example", cors: CORSConfig()).isEmpty)
        XCTAssertTrue(RequestRouter.corsHeaders(origin: nil, cors: CORSConfig()).isEmpty)
    }

    func testWildcardAnswersStarForEveryoneWithoutVaryOrCredentials() {
        var cors = CORSConfig()
        cors.allowOrigins = ["*"]
        for origin in ["https://a.example", nil] {
            let headers = RequestRouter.corsHeaders(origin: origin, cors: cors)
            XCTAssertEqual(Self.values(headers, "Access-Control-Allow-Origin"), ["*"])
            XCTAssertEqual(Self.values(headers, "Vary"), [])
        }
        // Built in code with both (the loader refuses it): still never credentials for every origin.
        cors.allowCredentials = true
        let headers = RequestRouter.corsHeaders(origin: "https://evil.example", cors: cors)
        XCTAssertEqual(Self.values(headers, "Access-Control-Allow-Origin"), ["*"])
        XCTAssertEqual(Self.values(headers, "Access-Control-Allow-Credentials"), [])
    }

    func testListedOriginsEchoTheOriginWithCredentialsAndAlwaysVary() {
        var cors = CORSConfig()
        cors.allowOrigins = ["https://app.example.com", "https://*.partner.example"]
        cors.allowCredentials = true
        for origin in ["https://app.example.com", "https://eu.partner.example"] {
            let headers = RequestRouter.corsHeaders(origin: origin, cors: cors)
            XCTAssertEqual(Self.values(headers, "Access-Control-Allow-Origin"), [origin])
            XCTAssertEqual(Self.values(headers, "Access-Control-Allow-Credentials"), ["true"])
            XCTAssertEqual(Self.values(headers, "Vary"), ["Origin"])
            XCTAssertEqual(Self.values(headers, "Access-Control-Expose-Headers"), ["Last-Event-ID"])
        }
        // Refused or absent: only `Vary: Origin`, so a cache keeps the answers apart.
        for origin in ["https://evil.example", "https://partner.example", nil] {
            let headers = RequestRouter.corsHeaders(origin: origin, cors: cors)
            XCTAssertEqual(headers.map(\.0), ["Vary"], "\(origin ?? "no origin")")
            XCTAssertEqual(Self.values(headers, "Vary"), ["Origin"])
        }
        cors.allowCredentials = false
        let headers = RequestRouter.corsHeaders(origin: "https://app.example.com", cors: cors)
        XCTAssertEqual(Self.values(headers, "Access-Control-Allow-Origin"), ["https://app.example.com"])
        XCTAssertEqual(Self.values(headers, "Access-Control-Allow-Credentials"), [])
    }

    func testPreflightAllowsAuthorizationOnlyWhenTheFeedTakesACredential() {
        var settings = FeedSettings()
        settings.cors.allowOrigins = ["https://*.example.com"]
        let open = RequestRouter.preflightHeaders(origin: "https://a.example.com", settings: settings)
        XCTAssertEqual(Self.values(open, "Access-Control-Allow-Headers"), ["Last-Event-ID, Cache-Control"])
        XCTAssertEqual(Self.values(open, "Access-Control-Allow-Methods"), ["GET, HEAD, OPTIONS"])
        for mode in [AuthMode.jwt, .forward, .optional] {
            settings.auth.mode = mode
            let guarded = RequestRouter.preflightHeaders(origin: "https://a.example.com", settings: settings)
            XCTAssertEqual(
                Self.values(guarded, "Access-Control-Allow-Headers"),
                ["Last-Event-ID, Cache-Control, Authorization"],
                "\(mode)"
            )
        }
        // A refused origin learns nothing about methods or headers.
        let refused = RequestRouter.preflightHeaders(origin: "https://example.com", settings: settings)
        XCTAssertEqual(refused.map(\.0), ["Vary"])
    }

    private static func values(_ headers: [(String, String)], _ name: String) -> [String] {
        headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }
}
