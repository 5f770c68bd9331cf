/// Why a credential was refused. Every case is a `401` at the gate; the raw value is the metric label.
public enum TokenRefusal: String, Error, Sendable, Hashable, CaseIterable {
    /// No credential at all (where the feed demands one).
    case missing
    /// Not three base64url parts, undecodable JSON, a claim of the wrong type, or a bad feed pattern.
    case malformed
    /// The signature does not verify with the key the token names.
    case badSignature = "bad_signature"
    /// The header's `alg` is not the one the key is pinned to (this includes `none`).
    case algorithmNotAllowed = "algorithm_not_allowed"
    /// The token names a `kid` no configured key has, or names none and no key is without a `kid`.
    case unknownKeyID = "unknown_kid"
    /// `exp` is past (beyond the leeway).
    case expired
    /// `nbf` is ahead (beyond the leeway).
    case notYetValid = "not_yet_valid"
    /// `iss` is not the configured issuer.
    case wrongIssuer = "wrong_issuer"
    /// `aud` does not contain the configured audience.
    case wrongAudience = "wrong_audience"
}
