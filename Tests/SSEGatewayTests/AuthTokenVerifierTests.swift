import Foundation
import JWTKit
import XCTest

@testable import SSEGateway

/// ``TokenVerifier`` against tokens signed at test time: every algorithm family, every refusal reason, the
/// `alg` attacks (`none`, RS256 turned into HS256 with the public key as secret), leeway and the feeds claim.
final class AuthTokenVerifierTests: XCTestCase {
    private let now = Date(timeIntervalSince1970: 1_800_000_000)
    private var nowSeconds: Double { self.now.timeIntervalSince1970 }
    private let secret = String(repeating: "a-test-secret-", count: 5)

    private func verifier(
        _ settings: JWTSettings,
        files: [String: String]
    ) async throws(JWTSetupError) -> TokenVerifier {
        let files = FakeKeyFiles(files: files)
        return try await TokenVerifier(settings: settings, readFile: files.read)
    }

    private func hmacVerifier(
        issuer: String? = nil,
        audience: String? = nil,
        claim: String = "feeds",
        defaultAllow: [FeedGrant] = []
    ) async throws -> TokenVerifier {
        let settings = JWTSettings(
            keys: [JWTKeySettings(file: "hs.secret", algorithm: .hs256)],
            issuer: issuer,
            audience: audience,
            leewaySeconds: 30,
            claim: claim,
            defaultAllow: defaultAllow
        )
        // Written with `echo`: the trailing line break is not part of the secret.
        return try await self.verifier(settings, files: ["hs.secret": self.secret + "\n"])
    }

    private func hmacToken(_ claims: TokenClaims, secret: String? = nil, kid: String? = nil) async throws -> String {
        let signer = JWTKeyCollection()
        await signer.add(
            hmac: HMACKey(from: secret ?? self.secret),
            digestAlgorithm: .sha256,
            kid: kid.map { JWKIdentifier(string: $0) }
        )
        return try await signer.sign(claims, kid: kid.map { JWKIdentifier(string: $0) })
    }

    private func claims(feeds: [String]? = ["/prices"], expiresIn: Double = 300) -> TokenClaims {
        TokenClaims(
            expiration: self.nowSeconds + expiresIn,
            subject: "user-1",
            stringLists: feeds.map { ["feeds": $0] } ?? [:]
        )
    }

    private func assertGranted(
        _ result: Result<VerifiedToken, TokenRefusal>,
        _ patterns: [String],
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        guard case .success(let token) = result else {
            return XCTFail("refused: \(result)", file: file, line: line)
        }
        XCTAssertEqual(token.grants.map(\.description), patterns, file: file, line: line)
    }

    private func assertRefused(
        _ result: Result<VerifiedToken, TokenRefusal>,
        _ reason: TokenRefusal,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertEqual(result, .failure(reason), file: file, line: line)
    }

    // MARK: algorithms

    func testHS256TokenGrantsItsFeedsAndReportsItsExpiry() async throws {
        let verifier = try await self.hmacVerifier()
        let token = try await self.hmacToken(self.claims(feeds: ["/prices", "/rooms/*"]))
        let result = await verifier.verify(token, now: self.now)
        self.assertGranted(result, ["/prices", "/rooms/*"])
        XCTAssertEqual(try result.get().expiresAt, Date(timeIntervalSince1970: self.nowSeconds + 300))
        XCTAssertEqual(try result.get().subject, "user-1")
        XCTAssertTrue(try result.get().allows(path: "/rooms/lobby"))
        XCTAssertFalse(try result.get().allows(path: "/orders"))
    }

    func testHS384AndHS512KeysVerifyTheirOwnAlgorithmOnly() async throws {
        let settings = JWTSettings(keys: [
            JWTKeySettings(file: "384", algorithm: .hs384, keyID: "h384"),
            JWTKeySettings(file: "512", algorithm: .hs512, keyID: "h512"),
        ])
        let verifier = try await self.verifier(settings, files: ["384": self.secret, "512": self.secret])
        let signer = JWTKeyCollection()
        await signer.add(hmac: HMACKey(from: self.secret), digestAlgorithm: .sha384, kid: "h384")
        await signer.add(hmac: HMACKey(from: self.secret), digestAlgorithm: .sha512, kid: "h512")
        self.assertGranted(
            await verifier.verify(try await signer.sign(self.claims(), kid: "h384"), now: self.now),
            ["/prices"]
        )
        self.assertGranted(
            await verifier.verify(try await signer.sign(self.claims(), kid: "h512"), now: self.now),
            ["/prices"]
        )

        // The same secret under another kid: the kid's key is pinned to HS384, so an HS512 token is refused.
        let other = JWTKeyCollection()
        await other.add(hmac: HMACKey(from: self.secret), digestAlgorithm: .sha512, kid: "h384")
        self.assertRefused(
            await verifier.verify(try await other.sign(self.claims(), kid: "h384"), now: self.now),
            .algorithmNotAllowed
        )
    }

    func testRS256AndPS256TokensVerifyWithThePublicKey() async throws {
        let keys = try AuthTestKeys.make()
        let settings = JWTSettings(keys: [
            JWTKeySettings(file: "rsa.pub", algorithm: .rs256, keyID: "r1"),
            JWTKeySettings(file: "rsa.pub", algorithm: .ps256, keyID: "p1"),
        ])
        let verifier = try await self.verifier(settings, files: ["rsa.pub": keys.rsaPublicPEM])
        let signer = JWTKeyCollection()
        let privateKey = try Insecure.RSA.PrivateKey(pem: keys.rsaPrivatePEM)
        await signer.add(rsa: privateKey, digestAlgorithm: .sha256, kid: "r1")
        await signer.add(pss: privateKey, digestAlgorithm: .sha256, kid: "p1")
        self.assertGranted(
            await verifier.verify(try await signer.sign(self.claims(), kid: "r1"), now: self.now),
            ["/prices"]
        )
        self.assertGranted(
            await verifier.verify(try await signer.sign(self.claims(), kid: "p1"), now: self.now),
            ["/prices"]
        )
    }

    func testES256ES384AndEdDSATokensVerify() async throws {
        let keys = try AuthTestKeys.make()
        let settings = JWTSettings(keys: [
            JWTKeySettings(file: "es256.pub", algorithm: .es256, keyID: "e256"),
            JWTKeySettings(file: "es384.pub", algorithm: .es384, keyID: "e384"),
            JWTKeySettings(file: "ed.pub", algorithm: .edDSA, keyID: "ed"),
        ])
        let verifier = try await self.verifier(
            settings,
            files: [
                "es256.pub": keys.es256.publicKey.pemRepresentation,
                "es384.pub": keys.es384.publicKey.pemRepresentation,
                "ed.pub": keys.edPublicPEM,
            ]
        )
        let signer = JWTKeyCollection()
        await signer.add(ecdsa: keys.es256, kid: "e256")
        await signer.add(ecdsa: keys.es384, kid: "e384")
        await signer.add(eddsa: try EdDSA.PrivateKey(pem: keys.edPrivatePEM), kid: "ed")
        for kid in ["e256", "e384", "ed"] {
            let token = try await signer.sign(self.claims(), kid: JWKIdentifier(string: kid))
            self.assertGranted(await verifier.verify(token, now: self.now), ["/prices"])
        }
        // Another EC key under a configured kid: the signature does not verify.
        let impostor = JWTKeyCollection()
        await impostor.add(ecdsa: ES256PrivateKey(), kid: "e256")
        self.assertRefused(
            await verifier.verify(try await impostor.sign(self.claims(), kid: "e256"), now: self.now),
            .badSignature
        )
    }

    func testJWKSFileKeysArePinnedToTheirAlg() async throws {
        let key = ES256PrivateKey()
        let parameters = try XCTUnwrap(key.publicKey.parameters)
        let jwks = """
            {"keys": [{"kty": "EC", "crv": "P-256", "kid": "j1", "alg": "ES256", "use": "sig",
                       "x": "\(parameters.x)", "y": "\(parameters.y)"}]}
            """
        let verifier = try await self.verifier(JWTSettings(jwksFile: "jwks.json"), files: ["jwks.json": jwks])
        let signer = JWTKeyCollection()
        await signer.add(ecdsa: key, kid: "j1")
        self.assertGranted(
            await verifier.verify(try await signer.sign(self.claims(), kid: "j1"), now: self.now),
            ["/prices"]
        )
        // No key without a kid is configured, so a token naming none has no key.
        let anonymous = JWTKeyCollection()
        await anonymous.add(ecdsa: key)
        self.assertRefused(await verifier.verify(try await anonymous.sign(self.claims()), now: self.now), .unknownKeyID)

        // A JWKS key without `alg` would let the token choose: refused at set-up.
        let withoutAlg = jwks.replacingOccurrences(of: "\"alg\": \"ES256\", ", with: "")
        do {
            _ = try await self.verifier(JWTSettings(jwksFile: "jwks.json"), files: ["jwks.json": withoutAlg])
            XCTFail("a JWKS key without alg was accepted")
        } catch {
            XCTAssertTrue(error.message.contains("no supported 'alg'"), error.message)
        }
    }

    // MARK: the alg attacks

    func testAlgNoneIsRefused() async throws {
        let verifier = try await self.hmacVerifier()
        let payload = #"{"exp": \#(Int(self.nowSeconds) + 300), "feeds": ["/prices"]}"#
        for header in [#"{"alg":"none","typ":"JWT"}"#, #"{"alg":"None"}"#, #"{"alg":"none","kid":"x"}"#] {
            let token = HandMadeToken.make(header: header, payload: payload)
            let result = await verifier.verify(token, now: self.now)
            guard case .failure = result else { return XCTFail("accepted \(header)") }
        }
        let noKid = HandMadeToken.make(header: #"{"alg":"none"}"#, payload: payload)
        self.assertRefused(await verifier.verify(noKid, now: self.now), .algorithmNotAllowed)
        self.assertRefused(await verifier.verify(noKid + "c2ln", now: self.now), .algorithmNotAllowed)
    }

    func testRS256KeyRefusesAnHS256TokenSignedWithItsPublicPEM() async throws {
        let keys = try AuthTestKeys.make()
        for keyID in [nil, "r1"] as [String?] {
            let settings = JWTSettings(keys: [JWTKeySettings(file: "rsa.pub", algorithm: .rs256, keyID: keyID)])
            let verifier = try await self.verifier(settings, files: ["rsa.pub": keys.rsaPublicPEM])
            // The classic confusion: HMAC with the public key's PEM text as the secret, header saying HS256.
            let forged = try await self.hmacToken(self.claims(), secret: keys.rsaPublicPEM, kid: keyID)
            XCTAssertEqual(HandMadeToken.header(of: forged)?.contains(#""alg":"HS256""#), true)
            self.assertRefused(await verifier.verify(forged, now: self.now), .algorithmNotAllowed)

            // The same HMAC signature under a header claiming RS256 reaches the RSA check and fails it.
            let parts = forged.split(separator: ".")
            let header = keyID.map { #"{"alg":"RS256","kid":"\#($0)"}"# } ?? #"{"alg":"RS256"}"#
            let relabelled = "\(HandMadeToken.base64URL(header)).\(parts[1]).\(parts[2])"
            self.assertRefused(await verifier.verify(relabelled, now: self.now), .badSignature)
        }
    }

    // MARK: refusals

    func testEachRefusalReason() async throws {
        let verifier = try await self.hmacVerifier(issuer: "https://id.example", audience: "ssegate")
        func token(_ edit: (inout TokenClaims) -> Void) async throws -> String {
            var claims = self.claims()
            claims.issuer = "https://id.example"
            claims.audience = ["other", "ssegate"]
            edit(&claims)
            return try await self.hmacToken(claims)
        }
        self.assertGranted(await verifier.verify(try await token { _ in }, now: self.now), ["/prices"])

        self.assertRefused(await verifier.verify(nil, now: self.now), .missing)
        for malformed in [
            "", "abc", "a.b", "a.b.c.d", "!!.e30.x", HandMadeToken.base64URL("{}") + ".e30.", "e30.e30.x",
        ] {
            self.assertRefused(await verifier.verify(malformed, now: self.now), .malformed)
        }
        // A validly signed token with a critical header extension nothing here understands (RFC 7515 §4.1.11).
        let critical = JWTKeyCollection()
        await critical.add(hmac: HMACKey(from: self.secret), digestAlgorithm: .sha256)
        let criticalHeader: JWTHeader = ["crit": .array([.string("b64")]), "b64": .bool(false)]
        var criticalClaims = self.claims()
        criticalClaims.issuer = "https://id.example"
        criticalClaims.audience = ["ssegate"]
        self.assertRefused(
            await verifier.verify(try await critical.sign(criticalClaims, header: criticalHeader), now: self.now),
            .malformed
        )
        self.assertRefused(
            await verifier.verify(
                try await self.hmacToken(self.claims(), secret: String(repeating: "another-secret-", count: 5)),
                now: self.now
            ),
            .badSignature
        )
        // A payload swapped under a valid signature.
        let valid = try await token { _ in }
        let parts = valid.split(separator: ".")
        let otherPayload = try await token { $0.stringLists["feeds"] = ["/admin"] }.split(separator: ".")[1]
        self.assertRefused(
            await verifier.verify("\(parts[0]).\(otherPayload).\(parts[2])", now: self.now),
            .badSignature
        )

        self.assertRefused(
            await verifier.verify(try await token { $0.expiration = self.nowSeconds - 31 }, now: self.now),
            .expired
        )
        self.assertRefused(
            await verifier.verify(try await token { $0.notBefore = self.nowSeconds + 31 }, now: self.now),
            .notYetValid
        )
        self.assertRefused(
            await verifier.verify(try await token { $0.issuer = "https://evil.example" }, now: self.now),
            .wrongIssuer
        )
        self.assertRefused(await verifier.verify(try await token { $0.issuer = nil }, now: self.now), .wrongIssuer)
        self.assertRefused(
            await verifier.verify(try await token { $0.audience = ["other"] }, now: self.now),
            .wrongAudience
        )
        self.assertRefused(await verifier.verify(try await token { $0.audience = nil }, now: self.now), .wrongAudience)
        self.assertRefused(
            await verifier.verify(try await self.hmacToken(self.claims(), kid: "unknown"), now: self.now),
            .unknownKeyID
        )
    }

    func testLeewayForgivesSkewOnExpAndNbf() async throws {
        let verifier = try await self.hmacVerifier()
        var claims = self.claims(expiresIn: -29)
        claims.notBefore = self.nowSeconds + 29
        self.assertGranted(await verifier.verify(try await self.hmacToken(claims), now: self.now), ["/prices"])
        // At exactly exp + leeway the token is over (RFC 7519: not "on or after" exp).
        claims.expiration = self.nowSeconds - 30
        self.assertRefused(await verifier.verify(try await self.hmacToken(claims), now: self.now), .expired)

        let strict = try await self.verifier(
            JWTSettings(keys: [JWTKeySettings(file: "s", algorithm: .hs256)], leewaySeconds: 0),
            files: ["s": self.secret]
        )
        self.assertRefused(
            await strict.verify(try await self.hmacToken(self.claims(expiresIn: -1)), now: self.now),
            .expired
        )
        self.assertGranted(
            await strict.verify(try await self.hmacToken(self.claims(expiresIn: 1)), now: self.now),
            ["/prices"]
        )
    }

    // MARK: the feeds claim

    func testClaimAbsentGivesDefaultAllowAndABrokenClaimIsMalformed() async throws {
        let none = try await self.hmacVerifier()
        let noClaim = try await self.hmacToken(self.claims(feeds: nil))
        self.assertGranted(await none.verify(noClaim, now: self.now), [])

        let open = try await self.hmacVerifier(defaultAllow: [try FeedGrant(parsing: "/public/*")])
        self.assertGranted(await open.verify(noClaim, now: self.now), ["/public/*"])

        // A claim given as one string counts as a one-element list.
        let signer = JWTKeyCollection()
        await signer.add(hmac: HMACKey(from: self.secret), digestAlgorithm: .sha256)
        let single = try await signer.sign(CustomFeeds(feeds: "/prices"))
        self.assertGranted(await open.verify(single, now: self.now), ["/prices"])

        // Another claim name, as `auth.jwt.claim` allows.
        let named = try await self.hmacVerifier(claim: "streams")
        var streams = self.claims(feeds: nil)
        streams.stringLists["streams"] = ["/rooms/{room}"]
        self.assertGranted(await named.verify(try await self.hmacToken(streams), now: self.now), ["/rooms/{room}"])

        // A pattern that does not parse, or a claim that is not strings: refused, not widened to default_allow.
        self.assertRefused(
            await open.verify(try await self.hmacToken(self.claims(feeds: ["rooms"])), now: self.now),
            .malformed
        )
        for numeric in [try await signer.sign(CustomFeeds(feeds: 5)), try await signer.sign(CustomFeeds(feeds: [1]))] {
            self.assertRefused(await open.verify(numeric, now: self.now), .malformed)
        }
    }

    // MARK: set-up

    func testSetUpRefusesUnusableKeys() async throws {
        func message(_ settings: JWTSettings, _ files: [String: String]) async -> String? {
            do {
                _ = try await self.verifier(settings, files: files)
                return nil
            } catch {
                return error.message
            }
        }
        let twoDefaults = JWTSettings(keys: [
            JWTKeySettings(file: "a", algorithm: .hs256), JWTKeySettings(file: "a", algorithm: .hs384),
        ])
        let twoDefaultsMessage = await message(twoDefaults, ["a": self.secret])
        XCTAssertEqual(twoDefaultsMessage, "key file 'a': only one key may be without a kid")
        let missing = await message(JWTSettings(keys: [JWTKeySettings(file: "nope", algorithm: .hs256)]), [:])
        XCTAssertTrue(missing?.hasPrefix("key file 'nope':") == true, missing ?? "accepted")
        let notAKey = await message(JWTSettings(keys: [JWTKeySettings(file: "k", algorithm: .es256)]), ["k": "hello"])
        XCTAssertTrue(notAKey?.hasPrefix("key file 'k' (ES256):") == true, notAKey ?? "accepted")
        let empty = await message(JWTSettings(keys: [JWTKeySettings(file: "k", algorithm: .hs256)]), ["k": "\n"])
        XCTAssertEqual(empty, "key file 'k' (HS256): the secret is 0 bytes; HS256 needs at least 32")
        let short = await message(
            JWTSettings(keys: [JWTKeySettings(file: "k", algorithm: .hs512)]),
            ["k": String(repeating: "x", count: 63)]
        )
        XCTAssertEqual(short, "key file 'k' (HS512): the secret is 63 bytes; HS512 needs at least 64")
        let noKeys = await message(JWTSettings(), [:])
        XCTAssertEqual(noKeys, "no keys configured")
    }
}

/// A payload whose `feeds` claim has another shape than a list of strings: one string (allowed) or numbers
/// (refused rather than ignored).
private struct CustomFeeds<Value: Codable & Sendable>: JWTPayload {
    var feeds: Value
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
