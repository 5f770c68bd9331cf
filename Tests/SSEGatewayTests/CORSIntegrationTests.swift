import Foundation
import NIOCore
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// CORS through the running gateway (SPEC §6): subdomain patterns, credentials, `Vary: Origin` on allowed
/// and refused answers, and a preflight that allows `Authorization` on a feed that takes a credential.
final class CORSIntegrationTests: XCTestCase {
    func testSubdomainPatternWithCredentialsEchoesTheOriginAndVariesOnRefusals() async throws {
        let harness = try await self.harness()
        self.addTeardownBlock { await harness.stop() }

        let allowed = try await harness.client("/app", headers: [("Origin", "https://a.b.example.com")])
        let head = try await allowed.waitForHead()
        XCTAssertEqual(head.status, .ok)
        XCTAssertEqual(head.headers["Access-Control-Allow-Origin"], ["https://a.b.example.com"])
        XCTAssertEqual(head.headers["Access-Control-Allow-Credentials"], ["true"])
        XCTAssertTrue(Self.varies(head.headers["Vary"]), "\(head.headers)")
        await allowed.close()

        for origin in ["https://example.com", "https://evilexample.com", "http://a.example.com", nil] {
            let request = try await harness.client("/app", headers: origin.map { [("Origin", $0)] } ?? [])
            let refused = try await request.waitForHead()
            XCTAssertEqual(refused.status, .ok, "CORS is the browser's business; the stream itself is served")
            XCTAssertEqual(refused.headers["Access-Control-Allow-Origin"], [], "\(origin ?? "no origin")")
            XCTAssertEqual(refused.headers["Access-Control-Allow-Credentials"], [], "\(origin ?? "no origin")")
            XCTAssertTrue(
                Self.varies(refused.headers["Vary"]),
                "\(origin ?? "no origin"): a cache must not serve this answer to an allowed origin"
            )
            await request.close()
        }
    }

    func testPreflightAllowsAuthorizationOnlyOnAFeedThatTakesACredential() async throws {
        let harness = try await self.harness()
        self.addTeardownBlock { await harness.stop() }
        for (path, expected) in [
            ("/app", "Last-Event-ID, Cache-Control"), ("/private", "Last-Event-ID, Cache-Control, Authorization"),
        ] {
            let result = try await rawExchange(
                port: harness.port,
                """
                OPTIONS \(path) HTTP/1.1\r
                Host: gw\r
                Origin: https://app.example.com\r
                Access-Control-Request-Method: GET\r
                Access-Control-Request-Headers: authorization, last-event-id\r
                Connection: close\r
                \r

                """,
                group: harness.clientGroup
            )
            let response = try XCTUnwrap(
                RawConnection.parseResponses(result.response, headOnly: true).first,
                result.response
            )
            XCTAssertEqual(response.status, 204, path)
            XCTAssertEqual(response.header("Access-Control-Allow-Origin"), ["https://app.example.com"], path)
            XCTAssertEqual(response.header("Access-Control-Allow-Credentials"), ["true"], path)
            XCTAssertEqual(response.header("Access-Control-Allow-Headers"), [expected], path)
            XCTAssertTrue(Self.varies(response.header("Vary")), path)
        }
        // A refused origin's preflight allows nothing, and still varies.
        let refused = try await rawExchange(
            port: harness.port,
            "OPTIONS /private HTTP/1.1\r\nHost: gw\r\nOrigin: https://example.com\r\n"
                + "Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n",
            group: harness.clientGroup
        )
        let response = try XCTUnwrap(RawConnection.parseResponses(refused.response, headOnly: true).first)
        XCTAssertEqual(response.header("Access-Control-Allow-Origin"), [])
        XCTAssertEqual(response.header("Access-Control-Allow-Headers"), [])
        XCTAssertTrue(Self.varies(response.header("Vary")))
    }

    /// `/app` open; `/private` with `auth: jwt` (an HS256 key, so the feed is valid whatever the gate checks).
    private func harness() async throws -> Harness {
        let secret = try ConfigFixtures.makeTemporaryDirectory(for: self) + "/hs256.secret"
        try "0123456789abcdef0123456789abcdef".write(toFile: secret, atomically: true, encoding: .utf8)
        let origins: [OriginPattern] = ["https://*.example.com"]
        return try await Harness.start { origin in
            [
                try Harness.feed("/app", upstream: "\(origin)/app") {
                    $0.settings.cors.allowOrigins = origins
                    $0.settings.cors.allowCredentials = true
                },
                try Harness.feed("/private", upstream: "\(origin)/private") {
                    $0.settings.cors.allowOrigins = origins
                    $0.settings.cors.allowCredentials = true
                    $0.settings.auth.mode = .jwt
                    $0.settings.auth.jwt.keys = [JWTKeySettings(file: secret, algorithm: .hs256)]
                },
            ]
        }
    }

    private static func varies(_ values: [String]) -> Bool {
        values.flatMap { $0.split(separator: ",") }.contains {
            $0.trimmingCharacters(in: .whitespaces).lowercased() == "origin"
        }
    }
}
