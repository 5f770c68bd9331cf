import AsyncHTTPClient
import Foundation
import JWTKit
import Logging
import NIOCore

/// Verifies a bearer token against the keys of one ``JWTSettings`` and says what it grants or why it is refused.
///
/// The signature is checked by jwt-kit's `JWTKeyCollection`; this type adds what jwt-kit leaves to its caller:
/// - **`alg` pinning.** jwt-kit picks the key by `kid` and verifies with that key's own algorithm, but it does
///   not compare the header's `alg` with it, and a token naming an unknown `kid` falls back to the default key.
///   Here the header's `kid` must name a configured key (or be absent when a key without `kid` exists), and
///   its `alg` must be exactly the one that key is pinned to, before any signature check: `alg: none` and an
///   RS256 key's public PEM used as an HS256 secret are refused without reaching the crypto.
/// - **Typed refusals.** Each failure maps to one ``TokenRefusal`` (a metric label), with the `exp`/`nbf`
///   leeway applied here rather than by jwt-kit's claim verifiers.
///
/// Keys come from two places with different lifetimes:
/// - **Files** (`keys:` and `jwks_file`) are read once when the verifier is built; an unusable one is a
///   ``JWTSetupError``. They are in every key set the verifier ever uses.
/// - **A JWKS URL** (`jwks_url`) gives a set that is replaced at run time by a ``JWKSKeySource``: fetched while
///   the verifier is built, every `jwks_refresh` by ``runRefresh()``, and when a token names a `kid` no key has
///   (at most once per `jwks_min_refresh`; concurrent tokens share the fetch and are verified against its
///   result). A verification reads one immutable snapshot of that set. A failed fetch is no setup error (the
///   provider may be down at start): it keeps the last good set, and tokens that need a key the verifier does
///   not have are refused `unknown_kid`. A `kid` that a file key and the URL both have is the file's key (the
///   URL's is skipped with a log line): the operator wrote the file, the URL is only trusted for new `kid`s.
///
/// Building reads the key files once; verifying is `async` because `JWTKeyCollection` is an actor.
public struct TokenVerifier: Sendable {
    /// The file keys: fixed for the verifier's life.
    private let keys: JWTKeyCollection
    /// The algorithm each configured `kid` is pinned to.
    private let pinnedByKeyID: [String: JWTSigningAlgorithm]
    /// The algorithm of the key without a `kid`, which verifies tokens that name none.
    private let pinnedDefault: JWTSigningAlgorithm?
    private let settings: JWTSettings
    /// The keys of `jwks_url`, when set.
    private let urlKeys: JWKSKeySource?

    /// Reads every key file in `settings` with `readFile` (tests pass their own) and fails on the first unusable
    /// one. With a `jwksURL`, `httpClient` is required (its absence is a setup error) and the first fetch is
    /// awaited here, bounded by `jwksFetchTimeout`; its failure is logged, not thrown. The caller then runs
    /// ``runRefresh()`` in a task for as long as the verifier is in use.
    public init(
        settings: JWTSettings,
        httpClient: HTTPClient? = nil,
        logger: Logger = Logger(label: "ssegate"),
        jwksFetchTimeout: TimeAmount = .seconds(5),
        readFile: (String) throws -> String = { try String(contentsOfFile: $0, encoding: .utf8) }
    ) async throws(JWTSetupError) {
        let keys = JWTKeyCollection()
        var pinnedByKeyID: [String: JWTSigningAlgorithm] = [:]
        var pinnedDefault: JWTSigningAlgorithm?

        if let jwksFile = settings.jwksFile {
            let fileKeys: [JWKSFile.Key]
            do {
                fileKeys = try JWKSFile.parse(try readFile(jwksFile))
            } catch {
                throw JWTSetupError("JWKS file '\(jwksFile)': \(error)")
            }
            for key in fileKeys {
                pinnedByKeyID[key.keyID] = key.algorithm
                do {
                    try await keys.add(jwk: key.jwk, isDefault: false)
                } catch {
                    throw JWTSetupError("JWKS file '\(jwksFile)': key '\(key.keyID)': \(error)")
                }
            }
        }

        for key in settings.keys {
            if let keyID = key.keyID {
                guard pinnedByKeyID.updateValue(key.algorithm, forKey: keyID) == nil else {
                    throw JWTSetupError("key file '\(key.file)': kid '\(keyID)' appears twice")
                }
            } else {
                guard pinnedDefault == nil else {
                    throw JWTSetupError("key file '\(key.file)': only one key may be without a kid")
                }
                pinnedDefault = key.algorithm
            }
            let text: String
            do {
                text = try readFile(key.file)
            } catch {
                throw JWTSetupError("key file '\(key.file)': \(error)")
            }
            do {
                try await Self.add(key, text: text, to: keys)
            } catch {
                throw JWTSetupError("key file '\(key.file)' (\(key.algorithm.rawValue)): \(error)")
            }
        }
        if let url = settings.jwksURL {
            guard let httpClient else { throw JWTSetupError("jwks_url '\(url)': no HTTP client to fetch it with") }
            let source = JWKSKeySource(
                fetcher: JWKSFetcher(url: url, client: httpClient, timeout: jwksFetchTimeout),
                refresh: settings.jwksRefresh,
                minRefresh: settings.jwksMinRefresh,
                reservedKeyIDs: Set(pinnedByKeyID.keys),
                logger: logger
            )
            await source.refreshNow()
            self.urlKeys = source
        } else {
            guard pinnedDefault != nil || !pinnedByKeyID.isEmpty else { throw JWTSetupError("no keys configured") }
            self.urlKeys = nil
        }

        self.keys = keys
        self.pinnedByKeyID = pinnedByKeyID
        self.pinnedDefault = pinnedDefault
        self.settings = settings
    }

    /// Refreshes the `jwks_url` keys every `jwks_refresh` until the calling task is cancelled (a reload or the
    /// shutdown cancels it); then cancels a fetch still running, and the verifier fetches nothing any more (an
    /// unknown `kid` is refused at once). Returns at once when there is no `jwks_url`. Run it once per verifier.
    public func runRefresh() async {
        await self.urlKeys?.runRefresh()
    }

    private static func add(_ key: JWTKeySettings, text: String, to keys: JWTKeyCollection) async throws {
        try await JWTKeyMaterial.parse(key, text: text).add(to: keys, kid: key.keyID)
    }

    /// Verifies `token` (nil when the request brought none) at time `now`.
    public func verify(_ token: String?, now: Date = Date()) async -> Result<VerifiedToken, TokenRefusal> {
        guard let token else { return .failure(.missing) }
        let header: JWTHeader
        switch Self.header(of: token) {
        case .success(let decoded): header = decoded
        case .failure(let refusal): return .failure(refusal)
        }
        let pinned: JWTSigningAlgorithm
        let keys: JWTKeyCollection
        if let kid = header.kid {
            if let algorithm = self.pinnedByKeyID[kid] {
                (keys, pinned) = (self.keys, algorithm)
            } else if let urlKeys = self.urlKeys, Self.mayComeFromURL(alg: header.alg),
                let found = await urlKeys.key(for: kid)
            {
                (keys, pinned) = found
            } else {
                return .failure(.unknownKeyID)
            }
        } else {
            guard let algorithm = self.pinnedDefault else { return .failure(.unknownKeyID) }
            (keys, pinned) = (self.keys, algorithm)
        }
        guard header.alg == pinned.rawValue else { return .failure(.algorithmNotAllowed) }

        let claims: TokenClaims
        do {
            claims = try await keys.verify(token, as: TokenClaims.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            return .failure(.badSignature)
        } catch {
            return .failure(.malformed)
        }
        return self.check(claims, now: now)
    }

    /// Whether a key for `alg` can come from a JWKS URL at all (only asymmetric ones: a JWKS URL never
    /// publishes an HMAC secret). A token naming another `alg` and an unknown `kid` cannot trigger a refetch.
    private static func mayComeFromURL(alg: String?) -> Bool {
        guard let alg, let algorithm = JWTSigningAlgorithm(rawValue: alg) else { return false }
        return !algorithm.isSymmetric
    }

    private func check(_ claims: TokenClaims, now: Date) -> Result<VerifiedToken, TokenRefusal> {
        let seconds = now.timeIntervalSince1970
        let leeway = Double(self.settings.leewaySeconds)
        // RFC 7519 §4.1.4: the token must not be accepted on or after `exp`.
        if let expiration = claims.expiration, seconds >= expiration + leeway { return .failure(.expired) }
        if let notBefore = claims.notBefore, seconds + leeway < notBefore { return .failure(.notYetValid) }
        if let issuer = self.settings.issuer, claims.issuer != issuer { return .failure(.wrongIssuer) }
        if let audience = self.settings.audience, !(claims.audience ?? []).contains(audience) {
            return .failure(.wrongAudience)
        }
        let grants: [FeedGrant]
        if let patterns = claims.stringLists[self.settings.claim] {
            do {
                grants = try patterns.map { pattern throws(FeedGrantError) in try FeedGrant(parsing: pattern) }
            } catch {
                return .failure(.malformed)
            }
        } else if claims.otherClaims.contains(self.settings.claim) {
            // Present but not strings: a broken issuer, not a token without the claim.
            return .failure(.malformed)
        } else {
            grants = self.settings.defaultAllow
        }
        return .success(
            VerifiedToken(
                expiresAt: claims.expiration.map { Date(timeIntervalSince1970: $0) },
                subject: claims.subject,
                grants: grants
            )
        )
    }

    /// The token's decoded header, or `.malformed` when it is not three base64url parts with a JSON header
    /// naming an `alg` and no `crit`.
    private static func header(of token: String) -> Result<JWTHeader, TokenRefusal> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = Self.base64URLDecoded(parts[0]),
            let header = try? JSONDecoder().decode(JWTHeader.self, from: data), header.alg != nil,
            // RFC 7515 §4.1.11: a `crit` extension the verifier does not understand (it understands none) refuses.
            header.fields["crit"] == nil
        else { return .failure(.malformed) }
        return .success(header)
    }

    private static func base64URLDecoded(_ text: Substring) -> Data? {
        var base64 = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }
}
