import Foundation
import JWTKit

/// The rules of a `jwks_file` that need no crypto: a JWKS document whose every key has a `kid`, a supported
/// `alg` (which pins it) and a `kid` no other key has.
///
/// Shared by the config loader, which reports a file that breaks them at its line and column (`ssegate check`
/// catches it), and ``TokenVerifier``, which then adds the keys (that part is async: jwt-kit's key collection
/// is an actor).
enum JWKSFile {
    struct Key {
        var keyID: String
        var algorithm: JWTSigningAlgorithm
        var jwk: JWK
    }

    /// The file's keys, or what is wrong with it.
    static func parse(_ text: String) throws(JWTSetupError) -> [Key] {
        let jwks: JWKS
        do {
            jwks = try JSONDecoder().decode(JWKS.self, from: Data(text.utf8))
        } catch {
            throw JWTSetupError("not a JWKS document (\(error))")
        }
        var keys: [Key] = []
        for jwk in jwks.keys {
            guard let keyID = jwk.keyIdentifier?.string else {
                throw JWTSetupError("a key has no 'kid'")
            }
            // A key without `alg` would let the token's header choose the algorithm.
            guard let name = jwk.algorithm?.rawValue, let algorithm = JWTSigningAlgorithm(rawValue: name) else {
                throw JWTSetupError("key '\(keyID)' has no supported 'alg'")
            }
            guard !keys.contains(where: { $0.keyID == keyID }) else {
                throw JWTSetupError("kid '\(keyID)' appears twice")
            }
            keys.append(Key(keyID: keyID, algorithm: algorithm, jwk: jwk))
        }
        return keys
    }
}
