import Foundation
import JWTKit
import NIOCore
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// `auth:` in the config (SPEC §6): the whole documented shape, the `auth: jwt` shorthand, a feed overriding
/// `defaults.auth` key by key, and each way it can be wrong, at its line and column. Key files are made at
/// test time (EC with jwt-kit, RSA with `openssl`), since the loader parses them as their `alg` needs.
final class ConfigAuthTests: XCTestCase {
    /// A folder with `keys/hs256.secret` (40 bytes), `keys/short.secret` (10 bytes), `keys/es256.pem` (an EC
    /// public key) and `keys/jwks.json` (one ES256 key with a `kid`).
    private func keyFolder() throws -> String {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        let keys = directory + "/keys"
        try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
        try (String(repeating: "s", count: 40) + "\n").write(
            toFile: keys + "/hs256.secret",
            atomically: true,
            encoding: .utf8
        )
        try "0123456789".write(toFile: keys + "/short.secret", atomically: true, encoding: .utf8)
        let ec = ES256PrivateKey()
        try ec.publicKey.pemRepresentation.write(toFile: keys + "/es256.pem", atomically: true, encoding: .utf8)
        let point = ec.publicKey.parameters!
        let jwk = JWK.ecdsa(.es256, identifier: "j1", x: point.x, y: point.y, curve: .p256)
        try String(decoding: try JSONEncoder().encode(JWKS(keys: [jwk])), as: UTF8.self).write(
            toFile: keys + "/jwks.json",
            atomically: true,
            encoding: .utf8
        )
        return directory
    }

    private func assertSingleError(
        _ yaml: String,
        in directory: String,
        line: Int,
        column: Int,
        _ message: String,
        file: StaticString = #filePath,
        sourceLine: UInt = #line
    ) {
        ConfigFixtures.assertSingleError(
            yaml,
            line: line,
            column: column,
            message,
            baseDirectory: directory,
            file: file,
            line: sourceLine
        )
    }

    // MARK: - What parses

    func testTheDocumentedShapeParsesToEveryValue() throws {
        let directory = try self.keyFolder()
        let config = try ConfigFixtures.parse(
            """
            defaults:
              auth:
                mode: jwt
                jwt:
                  keys: [{ file: keys/hs256.secret, alg: HS256 }, { file: keys/es256.pem, alg: ES256, kid: k1 }]
                  jwks_file: keys/jwks.json
                  jwks_url: https://id.example.com/.well-known/jwks.json
                  jwks_refresh: 5m
                  jwks_min_refresh: 45s
                  issuer: https://id.example.com
                  audience: ssegate
                  leeway: 12s
                  cookie: session_token
                  allow_query_token: true
                  claim: scopes
                  default_allow: [/public, "/rooms/*", "/users/{user}"]
                expiry: { warn_before: 20s, enforce: false }
                forward:
                  url: http://auth.internal:8081/check?v=1
                  ttl: 45s
                  max_entries: 5000
                  max_concurrent: 8
                  queue_timeout: 250ms
                  timeout: 3s
                  recheck: 2m
                  grant_header: X-Allowed-Feeds
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
            """,
            baseDirectory: directory
        )
        let auth = try XCTUnwrap(config.feeds.first).settings.auth
        XCTAssertEqual(auth.mode, .jwt)
        let jwt = auth.jwt
        XCTAssertEqual(
            jwt.keys,
            [
                JWTKeySettings(file: directory + "/keys/hs256.secret", algorithm: .hs256),
                JWTKeySettings(file: directory + "/keys/es256.pem", algorithm: .es256, keyID: "k1"),
            ]
        )
        XCTAssertEqual(jwt.jwksFile, directory + "/keys/jwks.json")
        XCTAssertEqual(jwt.jwksURL, try UpstreamURL(parsing: "https://id.example.com/.well-known/jwks.json"))
        XCTAssertEqual(jwt.jwksRefresh, .minutes(5))
        XCTAssertEqual(jwt.jwksMinRefresh, .seconds(45))
        XCTAssertEqual(jwt.issuer, "https://id.example.com")
        XCTAssertEqual(jwt.audience, "ssegate")
        XCTAssertEqual(jwt.leewaySeconds, 12)
        XCTAssertEqual(jwt.credentials, CredentialExtractor(cookieName: "session_token", allowQueryToken: true))
        XCTAssertEqual(jwt.claim, "scopes")
        XCTAssertEqual(jwt.defaultAllow.map(\.description), ["/public", "/rooms/*", "/users/{user}"])
        XCTAssertEqual(auth.expiry.warnBefore, .seconds(20))
        XCTAssertFalse(auth.expiry.enforce)
        let forward = auth.forward
        XCTAssertEqual(forward.url, try UpstreamURL(parsing: "http://auth.internal:8081/check?v=1"))
        XCTAssertEqual(forward.ttl, .seconds(45))
        XCTAssertEqual(forward.maxEntries, 5000)
        XCTAssertEqual(forward.maxConcurrent, 8)
        XCTAssertEqual(forward.queueTimeout, .milliseconds(250))
        XCTAssertEqual(forward.timeout, .seconds(3))
        XCTAssertEqual(forward.recheck, .minutes(2))
        XCTAssertEqual(forward.grantHeader, "X-Allowed-Feeds")
    }

    func testWithoutAuthEveryFeedIsOpenWithTheDocumentedDefaults() throws {
        let config = try ConfigFixtures.parse(
            """
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
            """
        )
        let auth = try XCTUnwrap(config.feeds.first).settings.auth
        XCTAssertEqual(auth, AuthConfig())
        XCTAssertEqual(auth.mode, .none)
        XCTAssertEqual(auth.jwt.credentials, CredentialExtractor(cookieName: "access_token", allowQueryToken: false))
        XCTAssertEqual(auth.jwt.claim, "feeds")
        XCTAssertEqual(auth.jwt.defaultAllow, [])
        XCTAssertEqual(auth.jwt.leewaySeconds, 30)
        XCTAssertEqual(auth.expiry.warnBefore, .seconds(30))
        XCTAssertTrue(auth.expiry.enforce)
    }

    func testTheModeShorthandAndAFeedOverridingDefaultsKeyByKey() throws {
        let directory = try self.keyFolder()
        let config = try ConfigFixtures.parse(
            """
            defaults:
              auth:
                jwt:
                  keys: [{ file: keys/hs256.secret, alg: HS256 }]
                  issuer: https://id.example.com
                  audience: ssegate
                  cookie: sid
                expiry: { warn_before: 10s }
            feeds:
              - path: /open
                upstream: { url: http://up/open }
              - path: /prices
                upstream: { url: http://up/prices }
                auth: jwt
              - path: /rooms/{room}
                upstream: { url: "http://up/rooms/{room}" }
                auth: { mode: optional }
              - path: /admin-feed
                upstream: { url: http://up/admin }
                auth: { mode: jwt, jwt: { audience: admins } }
              - path: /headers-only
                upstream: { url: http://up/headers }
                auth: { mode: jwt, jwt: { cookie: null }, expiry: { enforce: false } }
              - path: /inherits-nothing-extra
                upstream: { url: http://up/x }
                auth:
            """,
            baseDirectory: directory
        )
        let byPath = Dictionary(uniqueKeysWithValues: config.feeds.map { ($0.path.description, $0.settings.auth) })
        let inherited = try XCTUnwrap(byPath["/open"])
        XCTAssertEqual(inherited.mode, .none, "defaults.auth without mode leaves feeds open")
        XCTAssertEqual(inherited.jwt.audience, "ssegate")

        let shorthand = try XCTUnwrap(byPath["/prices"])
        XCTAssertEqual(shorthand.mode, .jwt)
        XCTAssertEqual(shorthand.jwt, inherited.jwt, "`auth: jwt` changes the mode only")
        XCTAssertEqual(shorthand.expiry.warnBefore, .seconds(10))

        let optional = try XCTUnwrap(byPath["/rooms/{room}"])
        XCTAssertEqual(optional.mode, .optional)
        XCTAssertEqual(optional.jwt, inherited.jwt)

        let audience = try XCTUnwrap(byPath["/admin-feed"])
        XCTAssertEqual(audience.jwt.audience, "admins")
        var expected = inherited.jwt
        expected.audience = "admins"
        XCTAssertEqual(audience.jwt, expected, "only the audience differs: keys, issuer and cookie are inherited")

        let headersOnly = try XCTUnwrap(byPath["/headers-only"])
        XCTAssertNil(headersOnly.jwt.credentials.cookieName, "cookie: null looks at no cookie")
        XCTAssertEqual(headersOnly.jwt.keys, inherited.jwt.keys)
        XCTAssertFalse(headersOnly.expiry.enforce)
        XCTAssertEqual(headersOnly.expiry.warnBefore, .seconds(10))

        XCTAssertEqual(byPath["/inherits-nothing-extra"], inherited, "an empty auth: keeps what defaults say")
    }

    func testAFeedMayTakeItsModeFromDefaultsAndItsKeysFromItself() throws {
        let directory = try self.keyFolder()
        let config = try ConfigFixtures.parse(
            """
            defaults:
              auth: jwt
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
                auth: { jwt: { keys: [{ file: keys/es256.pem, alg: ES256 }] } }
              - path: /news
                upstream: { url: http://up/news }
                auth: { mode: forward, forward: { url: "http://auth.internal/check" } }
            """,
            baseDirectory: directory
        )
        XCTAssertEqual(config.feeds[0].settings.auth.mode, .jwt)
        XCTAssertEqual(config.feeds[0].settings.auth.jwt.keys.map(\.algorithm), [.es256])
        XCTAssertEqual(config.feeds[1].settings.auth.mode, .forward)
        XCTAssertEqual(config.feeds[1].settings.auth.forward.url?.host, "auth.internal")
    }

    // MARK: - Errors, at their line and column

    func testAnUnknownKeyInAuthJWTSuggestsTheNearOne() throws {
        let directory = try self.keyFolder()
        self.assertSingleError(
            """
            defaults:
              auth:
                mode: jwt
                jwt:
                  keys: [{ file: keys/hs256.secret, alg: HS256 }]
                  audiance: ssegate
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
            """,
            in: directory,
            line: 6,
            column: 7,
            "unknown key 'audiance' in defaults.auth.jwt (did you mean 'audience'?)"
        )
        self.assertSingleError(
            """
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
                auth: { mode: jwt, jwt: { keys: [{ file: keys/hs256.secret, alg: HS256 }], isuer: me } }
            """,
            in: directory,
            line: 4,
            column: 80,
            "unknown key 'isuer' in feeds[0].auth.jwt (did you mean 'issuer'?)"
        )
        self.assertSingleError(
            """
            defaults:
              auth:
                forwrd: { url: http://auth/check }
            """,
            in: directory,
            line: 3,
            column: 5,
            "unknown key 'forwrd' in defaults.auth (did you mean 'forward'?)"
        )
    }

    func testABadModeOrAlgorithmIsNamedWithTheChoices() throws {
        let directory = try self.keyFolder()
        self.assertSingleError(
            """
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
                auth: jwk
            """,
            in: directory,
            line: 4,
            column: 11,
            "feeds[0].auth: expected one of none, jwt, forward, optional, got 'jwk'"
        )
        self.assertSingleError(
            """
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
                auth:
                  mode: jwt
                  jwt:
                    keys:
                      - { file: keys/hs256.secret, alg: HS257 }
            """,
            in: directory,
            line: 8,
            column: 45,
            "feeds[0].auth.jwt.keys[0].alg: expected one of HS256, HS384, HS512, RS256"
        )
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt:
                  keys: [{ file: keys/hs256.secret, alg: none }]
            """,
            in: directory,
            line: 4,
            column: 46,
            "got 'none'"
        )
    }

    func testJWTWithoutAnyKeySourceIsBlamedAtTheFeedsAuthOrAtTheFeed() throws {
        let directory = try self.keyFolder()
        self.assertSingleError(
            """
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
                auth: jwt
            """,
            in: directory,
            line: 4,
            column: 11,
            "feeds[0]: auth mode 'jwt' needs keys: set auth.jwt.keys, auth.jwt.jwks_file or auth.jwt.jwks_url"
        )
        self.assertSingleError(
            """
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
                auth:
                  mode: optional
                  jwt: { audience: ssegate }
            """,
            in: directory,
            line: 5,
            column: 7,
            "feeds[0]: auth mode 'optional' needs keys"
        )
        // The mode comes from defaults: the feed itself is blamed, and the message says where the mode came from.
        self.assertSingleError(
            """
            defaults:
              auth: { mode: jwt }
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
            """,
            in: directory,
            line: 4,
            column: 5,
            "feeds[0]: auth mode 'jwt' needs keys: set auth.jwt.keys, auth.jwt.jwks_file or auth.jwt.jwks_url "
                + "(from defaults)"
        )
        // Keys written in defaults but dropped by the feed (`jwks_url: null` was the only source).
        self.assertSingleError(
            """
            defaults:
              auth: { mode: jwt, jwt: { jwks_url: "https://id.example.com/jwks.json" } }
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
                auth: { jwt: { jwks_url: null } }
            """,
            in: directory,
            line: 6,
            column: 11,
            "feeds[0]: auth mode 'jwt' needs keys"
        )
    }

    func testForwardWithoutAURLIsAnError() throws {
        let directory = try self.keyFolder()
        self.assertSingleError(
            """
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
                auth: { mode: forward, forward: { ttl: 10s } }
            """,
            in: directory,
            line: 4,
            column: 11,
            "feeds[0]: auth mode 'forward' needs auth.forward.url"
        )
    }

    func testAKeyFileThatIsNotWhatItsAlgorithmNeedsIsBlamedAtItsPath() throws {
        let directory = try self.keyFolder()
        // An EC public key pinned to RS256.
        self.assertSingleError(
            """
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
                auth:
                  mode: jwt
                  jwt:
                    keys:
                      - file: keys/es256.pem
                        alg: RS256
            """,
            in: directory,
            line: 8,
            column: 19,
            "feeds[0].auth.jwt.keys[0].file: cannot use '\(directory)/keys/es256.pem' as a PEM public key for RS256: "
                + "not an RSA public key in PEM form"
        )
        // A secret shorter than the hash: refused, though jwt-kit would take it in a release build.
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt:
                  keys: [{ file: keys/short.secret, alg: HS256 }]
            """,
            in: directory,
            line: 4,
            column: 22,
            "as a secret for HS256: the secret is 10 bytes; HS256 needs at least 32"
        )
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt:
                  keys: [{ file: keys/hs256.secret, alg: HS512 }]
            """,
            in: directory,
            line: 4,
            column: 22,
            "the secret is 40 bytes; HS512 needs at least 64"
        )
    }

    func testAnRSAPublicKeyGivenAsES256IsRefused() throws {
        let directory = try self.keyFolder()
        let rsa = try AuthTestKeys.make()
        try rsa.rsaPublicPEM.write(toFile: directory + "/keys/rsa.pub", atomically: true, encoding: .utf8)
        try rsa.rsaPrivatePEM.write(toFile: directory + "/keys/rsa.key", atomically: true, encoding: .utf8)
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt:
                  keys: [{ file: keys/rsa.pub, alg: ES256, kid: r1 }]
            """,
            in: directory,
            line: 4,
            column: 22,
            "defaults.auth.jwt.keys[0].file: cannot use '\(directory)/keys/rsa.pub' as a PEM public key for ES256: "
                + "not a P-256 EC public key in PEM form"
        )
        // The private key where its public half belongs: said so, with the command that makes the public half.
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt:
                  keys: [{ file: keys/rsa.key, alg: RS256, kid: r1 }]
            """,
            in: directory,
            line: 4,
            column: 22,
            "it is a private key: give its public half (openssl pkey -in KEY -pubout)"
        )
        // The same key as RS256 and PS256 is fine.
        let config = try ConfigFixtures.parse(
            """
            defaults:
              auth:
                jwt:
                  keys: [{ file: keys/rsa.pub, alg: RS256, kid: r1 }, { file: keys/rsa.pub, alg: PS256, kid: p1 }]
            """,
            baseDirectory: directory
        )
        XCTAssertEqual(config.feeds, [])
    }

    func testAMissingKeyFileOrJWKSFileIsBlamedAtItsPath() throws {
        let directory = try self.keyFolder()
        self.assertSingleError(
            """
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
                auth:
                  mode: jwt
                  jwt:
                    keys: [{ file: keys/missing.pem, alg: ES256 }]
            """,
            in: directory,
            line: 7,
            column: 24,
            "feeds[0].auth.jwt.keys[0].file: file 'keys/missing.pem' (resolved to '\(directory)/keys/missing.pem') "
                + "does not exist"
        )
        self.assertSingleError(
            """
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
                auth: { mode: jwt, jwt: { jwks_file: keys/nope.json } }
            """,
            in: directory,
            line: 4,
            column: 42,
            "feeds[0].auth.jwt.jwks_file: file 'keys/nope.json'"
        )
        // Inherited by two feeds: the bad file is the one error, not also "needs keys" on each feed.
        self.assertSingleError(
            """
            defaults:
              auth:
                mode: jwt
                jwt: { keys: [{ file: keys/missing.pem, alg: ES256 }] }
            feeds:
              - path: /prices
                upstream: { url: http://up/prices }
              - path: /news
                upstream: { url: http://up/news }
                auth: jwt
            """,
            in: directory,
            line: 4,
            column: 27,
            "defaults.auth.jwt.keys[0].file: file 'keys/missing.pem'"
        )
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt:
                  keys: [{ alg: ES256 }]
            """,
            in: directory,
            line: 4,
            column: 14,
            "defaults.auth.jwt.keys[0]: missing required key 'file'"
        )
    }

    func testAJWKSFileIsCheckedAtLoad() throws {
        let directory = try self.keyFolder()
        let point = ES256PrivateKey().publicKey.parameters!
        func write(_ name: String, _ keys: [JWK]) throws {
            let text = String(decoding: try JSONEncoder().encode(JWKS(keys: keys)), as: UTF8.self)
            try text.write(toFile: directory + "/keys/" + name, atomically: true, encoding: .utf8)
        }
        try write("no-kid.json", [JWK.ecdsa(.es256, identifier: nil, x: point.x, y: point.y, curve: .p256)])
        try write("no-alg.json", [JWK.ecdsa(nil, identifier: "k", x: point.x, y: point.y, curve: .p256)])
        let twice = JWK.ecdsa(.es256, identifier: "k", x: point.x, y: point.y, curve: .p256)
        try write("twice.json", [twice, twice])
        try "<html>not json</html>".write(toFile: directory + "/keys/html.json", atomically: true, encoding: .utf8)
        let cases = [
            ("no-kid.json", "a key has no 'kid'"),
            ("no-alg.json", "key 'k' has no supported 'alg'"),
            ("twice.json", "kid 'k' appears twice"),
            ("html.json", "not a JWKS document"),
        ]
        for (name, message) in cases {
            self.assertSingleError(
                """
                feeds:
                  - path: /prices
                    upstream: { url: http://up/prices }
                    auth:
                      mode: jwt
                      jwt: { jwks_file: keys/\(name) }
                """,
                in: directory,
                line: 6,
                column: 25,
                "feeds[0].auth.jwt.jwks_file: cannot use '\(directory)/keys/\(name)' as a JWKS file: \(message)"
            )
        }
    }

    func testTwoKeysWithOneKidOrWithoutAKidAreRefused() throws {
        let directory = try self.keyFolder()
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt:
                  keys:
                    - { file: keys/hs256.secret, alg: HS256, kid: k1 }
                    - { file: keys/es256.pem, alg: ES256, kid: k1 }
            """,
            in: directory,
            line: 6,
            column: 11,
            "defaults.auth.jwt.keys[1]: kid 'k1' appears twice"
        )
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt:
                  keys:
                    - { file: keys/hs256.secret, alg: HS256 }
                    - { file: keys/es256.pem, alg: ES256 }
            """,
            in: directory,
            line: 6,
            column: 11,
            "defaults.auth.jwt.keys[1]: only one key may be without a kid"
        )
    }

    func testABadDefaultAllowPatternIsBlamedAtTheItem() throws {
        let directory = try self.keyFolder()
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt:
                  keys: [{ file: keys/hs256.secret, alg: HS256 }]
                  default_allow: [/public, "/rooms/room-*"]
            """,
            in: directory,
            line: 5,
            column: 32,
            "defaults.auth.jwt.default_allow[1]: feed pattern '/rooms/room-*': '*' and '{name}' must be whole segments"
        )
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt:
                  default_allow: [prices]
            """,
            in: directory,
            line: 4,
            column: 23,
            "feed pattern 'prices': must start with '/'"
        )
    }

    func testZeroOrNegativeTimersAreRefused() throws {
        let directory = try self.keyFolder()
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt:
                  jwks_url: https://id.example.com/jwks.json
                  jwks_min_refresh: 0s
            """,
            in: directory,
            line: 5,
            column: 25,
            "defaults.auth.jwt.jwks_min_refresh: must be greater than 0, got '0s'"
        )
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt: { jwks_refresh: 0ms }
            """,
            in: directory,
            line: 3,
            column: 26,
            "defaults.auth.jwt.jwks_refresh: must be greater than 0"
        )
        self.assertSingleError(
            """
            defaults:
              auth:
                forward: { url: http://auth/check, timeout: 0s }
            """,
            in: directory,
            line: 3,
            column: 49,
            "defaults.auth.forward.timeout: must be greater than 0"
        )
    }

    func testAnAuthURLCannotHavePlaceholdersOrAnotherScheme() throws {
        let directory = try self.keyFolder()
        self.assertSingleError(
            """
            feeds:
              - path: /rooms/{room}
                upstream: { url: "http://up/rooms/{room}" }
                auth: { mode: forward, forward: { url: "http://auth.internal/check/{room}" } }
            """,
            in: directory,
            line: 4,
            column: 44,
            "feeds[0].auth.forward.url: an auth URL cannot have placeholders such as '{room}'"
        )
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt: { jwks_url: "https://{tenant}.example.com/jwks.json" }
            """,
            in: directory,
            line: 3,
            column: 22,
            "defaults.auth.jwt.jwks_url: a placeholder can only be in the URL's path or query, not in its host"
        )
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt: { jwks_url: "ftp://id.example.com/jwks.json" }
            """,
            in: directory,
            line: 3,
            column: 22,
            "defaults.auth.jwt.jwks_url: URL scheme must be http or https, not 'ftp'"
        )
    }

    func testABadCookieNameIsRefused() throws {
        let directory = try self.keyFolder()
        self.assertSingleError(
            """
            defaults:
              auth:
                jwt: { cookie: "access token" }
            """,
            in: directory,
            line: 3,
            column: 20,
            "defaults.auth.jwt.cookie: 'access token' is not a valid cookie name"
        )
    }

    /// Which reloads send connected streams back through the gate: those that change who is admitted.
    func testOnlyChangesToWhoIsAdmittedCountAsANewGate() throws {
        var base = AuthConfig()
        base.mode = .jwt
        base.jwt.keys = [JWTKeySettings(file: "k.pem", algorithm: .es256)]
        var timers = base
        timers.expiry.warnBefore = .seconds(5)
        timers.forward.ttl = .seconds(1)
        XCTAssertTrue(timers.admitsTheSame(as: base))
        var audience = base
        audience.jwt.audience = "other"
        XCTAssertFalse(audience.admitsTheSame(as: base))
        var mode = base
        mode.mode = .optional
        XCTAssertFalse(mode.admitsTheSame(as: base))
        var forward = base
        forward.forward.url = try UpstreamURL(parsing: "http://auth.internal/check")
        XCTAssertFalse(forward.admitsTheSame(as: base))
    }
}
