import Foundation
import JWTKit
import NIOCore

/// The keys one fetch of a JWKS URL yielded: an immutable snapshot that verifications read whole, replaced by
/// the next good fetch.
///
/// Built with the rules of `jwks_file` (every key needs a `kid` and a supported `alg`, which pins it), but a
/// key that breaks them is skipped with a reason instead of refusing the set: an identity provider's set may
/// hold encryption keys, `ES512` or `oct` keys that ssegate never uses, and they must not hide the usable
/// ones. Also skipped: keys marked `"use": "enc"`, keys carrying private material, a second key with a `kid`
/// already taken, and a `kid` a configured file key has (the file key wins: the operator wrote it).
struct JWKSKeySet: Sendable {
    /// The fetched keys, each under its `kid`; no default key (a token without `kid` never reaches them).
    let keys: JWTKeyCollection
    /// The algorithm each `kid` is pinned to.
    let pinnedByKeyID: [String: JWTSigningAlgorithm]
    /// The document these keys came from, to skip rebuilding when a refresh returns the same bytes.
    let document: ByteBuffer?

    static func empty() -> JWKSKeySet {
        JWKSKeySet(keys: JWTKeyCollection(), pinnedByKeyID: [:], document: nil)
    }

    /// What a document yielded: the set (nil when no key is usable) and a line per skipped key.
    struct Outcome: Sendable {
        var keySet: JWKSKeySet?
        var skipped: [String]
    }

    /// Parses `document` (`{"keys": [...]}`); a `kid` in `reservedKeyIDs` (the file keys') is skipped.
    /// Throws when the document is not a JWKS at all.
    static func build(
        from document: ByteBuffer,
        reservedKeyIDs: Set<String>
    ) async throws(JWKSDocumentError) -> Outcome {
        let entries: [Entry]
        do {
            entries = try JSONDecoder().decode(Document.self, from: Data(document.readableBytesView)).keys
        } catch {
            throw JWKSDocumentError(message: "not a JWKS document (\(error))")
        }
        let keys = JWTKeyCollection()
        var pinned: [String: JWTSigningAlgorithm] = [:]
        var skipped: [String] = []
        for (index, entry) in entries.enumerated() {
            let name = entry.keyID.map { "key '\(Self.shown($0))'" } ?? "key #\(index + 1)"
            switch await Self.add(entry, to: keys, pinned: pinned, reservedKeyIDs: reservedKeyIDs) {
            case .success(let (keyID, algorithm)): pinned[keyID] = algorithm
            case .failure(let reason): skipped.append("\(name): \(reason.message)")
            }
        }
        let keySet = pinned.isEmpty ? nil : JWKSKeySet(keys: keys, pinnedByKeyID: pinned, document: document)
        return Outcome(keySet: keySet, skipped: skipped)
    }

    private static func add(
        _ entry: Entry,
        to keys: JWTKeyCollection,
        pinned: [String: JWTSigningAlgorithm],
        reservedKeyIDs: Set<String>
    ) async -> Result<(String, JWTSigningAlgorithm), JWKSDocumentError> {
        guard let keyID = entry.keyID else { return .failure(JWKSDocumentError(message: "no 'kid'")) }
        // A key without `alg` would let the token's header choose the algorithm.
        guard let name = entry.algorithm else { return .failure(JWKSDocumentError(message: "no 'alg'")) }
        guard let algorithm = JWTSigningAlgorithm(rawValue: name), !algorithm.isSymmetric else {
            return .failure(JWKSDocumentError(message: "unsupported 'alg' \(Self.shown(name))"))
        }
        guard entry.use == nil || entry.use == "sig" else {
            return .failure(JWKSDocumentError(message: "not a signing key ('use' is not 'sig')"))
        }
        guard !entry.hasPrivateMaterial else {
            return .failure(JWKSDocumentError(message: "holds private key material; not used"))
        }
        guard !reservedKeyIDs.contains(keyID) else {
            return .failure(JWKSDocumentError(message: "a configured key file has this kid; the file's key is used"))
        }
        guard pinned[keyID] == nil else {
            return .failure(JWKSDocumentError(message: "kid appears twice; the first is used"))
        }
        let jwk: JWK
        switch entry.jwk {
        case .success(let decoded): jwk = decoded
        case .failure(let reason): return .failure(reason)
        }
        let identifier = JWKIdentifier(string: keyID)
        do {
            try await keys.add(jwk: jwk, isDefault: false)
            // jwt-kit builds the key's verifier from `kty` and `alg`; a mismatch (an EC key marked RS256) leaves
            // it without one, and asking for the key then throws. The name check is the pin itself.
            let built = try await keys.getKey(for: identifier)
            guard built.name == algorithm.rawValue else {
                throw JWKSDocumentError(message: "key is for \(built.name), not \(algorithm.rawValue)")
            }
        } catch {
            await keys.remove(kid: identifier)
            return .failure(JWKSDocumentError(message: "unusable key (\(error))"))
        }
        return .success((keyID, algorithm))
    }

    /// A `kid` or `alg` from the provider, cut short for a log line.
    private static func shown(_ text: String) -> String {
        text.count <= 64 ? text : String(text.prefix(64)) + "…"
    }

    private struct Document: Decodable {
        var keys: [Entry]
    }

    /// One element of `keys`, decoded without failing the document: the fields the rules look at, and jwt-kit's
    /// `JWK` or why it could not be decoded (an unknown `kty` or curve).
    private struct Entry: Decodable {
        var keyID: String?
        var algorithm: String?
        var use: String?
        var hasPrivateMaterial: Bool
        var jwk: Result<JWK, JWKSDocumentError>

        private enum Field: String, CodingKey {
            case kid, alg, use, d, p, q, k
        }

        init(from decoder: any Decoder) {
            let fields = try? decoder.container(keyedBy: Field.self)
            self.keyID = try? fields?.decodeIfPresent(String.self, forKey: .kid)
            self.algorithm = try? fields?.decodeIfPresent(String.self, forKey: .alg)
            self.use = try? fields?.decodeIfPresent(String.self, forKey: .use)
            // `d` (EC, OKP, RSA), the RSA primes, or an `oct` key's secret `k`: private, never published.
            self.hasPrivateMaterial = [Field.d, .p, .q, .k].contains { fields?.contains($0) == true }
            do {
                self.jwk = .success(try JWK(from: decoder))
            } catch {
                self.jwk = .failure(JWKSDocumentError(message: "unsupported key (\(Self.brief(error)))"))
            }
        }

        /// A decoding error without the coding path noise.
        private static func brief(_ error: any Error) -> String {
            switch error {
            case DecodingError.dataCorrupted(let context), DecodingError.keyNotFound(_, let context),
                DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
                let path = context.codingPath.last.map { "'\($0.stringValue)': " } ?? ""
                return path + context.debugDescription
            default:
                return "\(error)"
            }
        }
    }
}

/// Why a JWKS document, or one key in it, is not used.
struct JWKSDocumentError: Error, Sendable, Hashable, CustomStringConvertible {
    var message: String

    var description: String { self.message }
}
