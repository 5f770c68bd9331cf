import Foundation
import JWTKit
import NIOCore

@testable import SSEGateTestSupport
@testable import SSEGateway

/// An HS256 secret in a file, the `auth:` settings that name it, and tokens signed with it at test time.
struct AuthGateFixture {
    let secret = String(repeating: "gate-test-secret-", count: 3)
    let secretFile: String

    init() throws {
        let directory = try TestScratch.directory("auth-gate")
        self.secretFile = directory.appendingPathComponent("hs256.secret").path
        try (self.secret + "\n").write(toFile: self.secretFile, atomically: true, encoding: .utf8)
    }

    /// `auth:` for `mode` with the HS256 key, no leeway (expiry tests count seconds), query tokens as asked.
    func auth(_ mode: AuthMode, allowQueryToken: Bool = false, warnBefore: TimeAmount = .seconds(30)) -> AuthConfig {
        var auth = AuthConfig()
        auth.mode = mode
        auth.jwt.keys = [JWTKeySettings(file: self.secretFile, algorithm: .hs256)]
        auth.jwt.leewaySeconds = 0
        auth.jwt.credentials.allowQueryToken = allowQueryToken
        auth.expiry.warnBefore = warnBefore
        return auth
    }

    /// A token granting `feeds` (nil: no feeds claim), valid from now for `expiresIn` seconds.
    func token(
        feeds: [String]? = ["/prices"],
        expiresIn: Double = 300,
        subject: String = "user-1",
        secret: String? = nil
    ) async throws -> String {
        let signer = JWTKeyCollection()
        await signer.add(hmac: HMACKey(from: secret ?? self.secret), digestAlgorithm: .sha256)
        let claims = TokenClaims(
            expiration: Date().timeIntervalSince1970 + expiresIn,
            subject: subject,
            stringLists: feeds.map { ["feeds": $0] } ?? [:]
        )
        return try await signer.sign(claims)
    }
}
