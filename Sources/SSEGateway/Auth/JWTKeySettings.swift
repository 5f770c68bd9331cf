/// One verification key as configured: a PEM public key (RSA, EC or Ed25519) or, for the HS algorithms,
/// a file holding the shared secret. The key accepts tokens signed with `algorithm` only.
public struct JWTKeySettings: Sendable, Hashable {
    /// Path of the PEM file or the secret file. A secret file's trailing line break is not part of the secret.
    public var file: String
    /// The only algorithm this key verifies.
    public var algorithm: JWTSigningAlgorithm
    /// The `kid` a token names to pick this key; a key without one verifies tokens that name no `kid`
    /// (at most one such key).
    public var keyID: String?

    public init(file: String, algorithm: JWTSigningAlgorithm, keyID: String? = nil) {
        self.file = file
        self.algorithm = algorithm
        self.keyID = keyID
    }
}
