import Foundation
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// `/api/feeds` names each feed's access control mode, and nothing of its keys, secrets or backend.
final class FeedsJSONAuthTests: XCTestCase {
    func testEachFeedShowsItsAuthModeAndNoSecret() async throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        let secret = directory + "/hs256-secret-file"
        try "0123456789abcdef0123456789abcdef".write(toFile: secret, atomically: true, encoding: .utf8)
        let forwardURL = try UpstreamURL(parsing: "http://checker:pa55word@127.0.0.1:9/check?key=k3y")
        let harness = try await Harness.start { origin in
            [
                try Harness.feed("/open", upstream: "\(origin)/open"),
                try Harness.feed("/private", upstream: "\(origin)/private") {
                    $0.settings.auth.mode = .jwt
                    $0.settings.auth.jwt.keys = [JWTKeySettings(file: secret, algorithm: .hs256, keyID: "kid-1")]
                    $0.settings.auth.jwt.credentials = CredentialExtractor(cookieName: "session_cookie_name")
                },
                try Harness.feed("/checked", upstream: "\(origin)/checked") {
                    $0.settings.auth.mode = .forward
                    $0.settings.auth.forward.url = forwardURL
                },
                try Harness.feed("/mixed", upstream: "\(origin)/mixed") {
                    $0.settings.auth.mode = .optional
                    $0.settings.auth.jwt.keys = [JWTKeySettings(file: secret, algorithm: .hs256)]
                },
            ]
        }
        self.addTeardownBlock { await harness.stop() }
        var json = ""
        var modes: [String: String] = [:]
        try await eventually("/api/feeds lists the four feeds") {
            let (response, _) = try await rawExchange(
                port: harness.adminPort,
                "GET /api/feeds HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                group: harness.clientGroup
            )
            json = RawConnection.parseResponses(response).first?.body ?? ""
            let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            let feeds = object?["feeds"] as? [[String: Any]] ?? []
            modes = Dictionary(
                uniqueKeysWithValues: feeds.compactMap { feed in
                    (feed["path"] as? String).map { ($0, feed["auth"] as? String ?? "missing") }
                }
            )
            return modes.count == 4
        }
        XCTAssertEqual(modes, ["/open": "none", "/private": "jwt", "/checked": "forward", "/mixed": "optional"])
        for secretText in [
            "hs256-secret-file", "0123456789abcdef", "kid-1", "session_cookie_name", "checker",
            "pa55word", "k3y", "127.0.0.1:9",
        ] {
            XCTAssertFalse(json.contains(secretText), "/api/feeds shows \(secretText): \(json)")
        }
    }
}
