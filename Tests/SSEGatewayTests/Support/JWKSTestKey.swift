import Foundation
import JWTKit

@testable import SSEGateway

/// An ES256 signing key with its `kid`, made at test time: its public half as a JWK for ``JWKSTestServer``, and
/// tokens it signs.
struct JWKSTestKey {
    var kid: String
    var key = ES256PrivateKey()

    var jwk: JWK {
        let point = self.key.publicKey.parameters!
        return .ecdsa(.es256, identifier: JWKIdentifier(string: self.kid), x: point.x, y: point.y, curve: .p256)
    }

    /// A token naming this key's `kid`, granting `feeds`, valid for `expiresIn` seconds.
    func token(feeds: [String] = ["/prices"], expiresIn: Double = 300) async throws -> String {
        let signer = JWTKeyCollection()
        await signer.add(ecdsa: self.key, kid: JWKIdentifier(string: self.kid))
        let claims = TokenClaims(
            expiration: Date().timeIntervalSince1970 + expiresIn,
            subject: "user-1",
            stringLists: ["feeds": feeds]
        )
        return try await signer.sign(claims, kid: JWKIdentifier(string: self.kid))
    }
}
