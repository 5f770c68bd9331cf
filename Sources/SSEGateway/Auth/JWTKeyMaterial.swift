import JWTKit

/// One configured key, parsed: a shared secret or a public key of the kind its algorithm needs.
///
/// Parsing is synchronous and separate from adding the key to a `JWTKeyCollection` (an actor), so the config
/// loader can report a key file that does not parse at its line and column, before anything starts.
enum JWTKeyMaterial {
    case hmac(HMACKey, DigestAlgorithm)
    case rsa(Insecure.RSA.PublicKey, DigestAlgorithm)
    case pss(Insecure.RSA.PublicKey, DigestAlgorithm)
    case es256(ES256PublicKey)
    case es384(ES384PublicKey)
    case edDSA(EdDSA.PublicKey)

    /// Parses the text of `key`'s file as `key.algorithm` needs it; the error names what is wrong.
    static func parse(_ key: JWTKeySettings, text: String) throws -> JWTKeyMaterial {
        switch key.algorithm {
        case .hs256, .hs384, .hs512:
            // A secret written with `echo` ends in a line break that the token's issuer did not sign with.
            var secret = Substring(text)
            while secret.last == "\n" || secret.last == "\r" { secret.removeLast() }
            // RFC 7518 §3.2: a key at least as long as the hash output. jwt-kit only asserts this (a crash in
            // a debug build, nothing in release), so a short secret is refused here.
            let minimum = key.algorithm == .hs256 ? 32 : key.algorithm == .hs384 ? 48 : 64
            guard secret.utf8.count >= minimum else {
                throw JWTSetupError(
                    "the secret is \(secret.utf8.count) bytes; \(key.algorithm.rawValue) needs at least \(minimum)"
                )
            }
            return .hmac(HMACKey(from: secret), self.digest(key.algorithm))
        case .rs256, .rs384, .rs512:
            return .rsa(
                try self.publicKey("an RSA", text) { try Insecure.RSA.PublicKey(pem: $0) },
                self.digest(key.algorithm)
            )
        case .ps256, .ps384, .ps512:
            return .pss(
                try self.publicKey("an RSA", text) { try Insecure.RSA.PublicKey(pem: $0) },
                self.digest(key.algorithm)
            )
        case .es256:
            return .es256(try self.publicKey("a P-256 EC", text) { try ES256PublicKey(pem: $0) })
        case .es384:
            return .es384(try self.publicKey("a P-384 EC", text) { try ES384PublicKey(pem: $0) })
        case .edDSA:
            return .edDSA(try self.publicKey("an Ed25519", text) { try EdDSA.PublicKey(pem: $0) })
        }
    }

    /// Parses a public key of `kind`; a failure says what was expected (the crypto library's own error is a
    /// number), and that a private key is not what the gateway needs.
    private static func publicKey<Key>(
        _ kind: String,
        _ text: String,
        _ parse: (String) throws -> Key
    ) throws(JWTSetupError) -> Key {
        do {
            return try parse(text)
        } catch {
            if text.contains("PRIVATE KEY-----") {
                throw JWTSetupError("it is a private key: give its public half (openssl pkey -in KEY -pubout)")
            }
            throw JWTSetupError("not \(kind) public key in PEM form (\(error))")
        }
    }

    private static func digest(_ algorithm: JWTSigningAlgorithm) -> DigestAlgorithm {
        switch algorithm {
        case .hs384, .rs384, .ps384, .es384: return .sha384
        case .hs512, .rs512, .ps512: return .sha512
        default: return .sha256
        }
    }

    /// Adds the key to `keys` under `kid` (nil: the key for tokens that name none).
    func add(to keys: JWTKeyCollection, kid: String?) async {
        let kid = kid.map { JWKIdentifier(string: $0) }
        switch self {
        case .hmac(let key, let digest): await keys.add(hmac: key, digestAlgorithm: digest, kid: kid)
        case .rsa(let key, let digest): await keys.add(rsa: key, digestAlgorithm: digest, kid: kid)
        case .pss(let key, let digest): await keys.add(pss: key, digestAlgorithm: digest, kid: kid)
        case .es256(let key): await keys.add(ecdsa: key, kid: kid)
        case .es384(let key): await keys.add(ecdsa: key, kid: kid)
        case .edDSA(let key): await keys.add(eddsa: key, kid: kid)
        }
    }
}
