/// A JWS algorithm a configured key is pinned to. A token whose header names another `alg` is refused
/// before any signature check, so a token cannot pick `none` or turn an RSA public key into an HMAC secret.
public enum JWTSigningAlgorithm: String, Sendable, Hashable, CaseIterable {
    case hs256 = "HS256"
    case hs384 = "HS384"
    case hs512 = "HS512"
    case rs256 = "RS256"
    case rs384 = "RS384"
    case rs512 = "RS512"
    case ps256 = "PS256"
    case ps384 = "PS384"
    case ps512 = "PS512"
    case es256 = "ES256"
    case es384 = "ES384"
    case edDSA = "EdDSA"

    /// True for the HMAC family, whose key file holds a shared secret rather than a PEM key.
    public var isSymmetric: Bool {
        switch self {
        case .hs256, .hs384, .hs512: return true
        default: return false
        }
    }
}
