import Foundation
import NIOCore

extension ConfigLoader {
    /// Applies an `auth:` value — a mode word (`auth: jwt`) or a mapping — over `auth`, key by key (SPEC §6).
    static func applyAuth(_ value: ConfigValue, to auth: inout AuthConfig) {
        if value.isNull {
            return
        }
        if case .scalar = value.node {
            if let mode = self.authMode(value) { auth.mode = mode }
            return
        }
        guard let mapping = value.mapping() else { return }
        if let modeValue = mapping.value("mode"), let mode = self.authMode(modeValue) {
            auth.mode = mode
        }
        if let jwt = mapping.child("jwt") {
            self.applyJWT(jwt, to: &auth.jwt)
        }
        if let expiry = mapping.child("expiry") {
            if let value = expiry.value("warn_before"), let warnBefore = value.duration() {
                auth.expiry.warnBefore = warnBefore
            }
            if let value = expiry.value("enforce"), let enforce = value.bool() {
                auth.expiry.enforce = enforce
            }
        }
        if let forward = mapping.child("forward") {
            self.applyForward(forward, to: &auth.forward)
        }
    }

    private static func authMode(_ value: ConfigValue) -> AuthMode? {
        value.choice(AuthMode.allCases.map(\.rawValue)).flatMap(AuthMode.init(rawValue:))
    }

    private static func applyJWT(_ mapping: ConfigMapping, to jwt: inout JWTSettings) {
        if let value = mapping.value("keys"), let items = value.list() {
            var keys: [JWTKeySettings] = []
            var isValid = true
            for item in items {
                guard let key = self.jwtKey(item) else {
                    isValid = false
                    continue
                }
                // As the verifier will see them: a token's `kid` must name one key, a token without one the
                // only key without a `kid`.
                if let keyID = key.keyID, keys.contains(where: { $0.keyID == keyID }) {
                    item.fail("kid '\(keyID)' appears twice")
                    isValid = false
                } else if key.keyID == nil, keys.contains(where: { $0.keyID == nil }) {
                    item.fail("only one key may be without a kid (a token without one could match either)")
                    isValid = false
                }
                keys.append(key)
            }
            if isValid { jwt.keys = keys }
        }
        if let value = mapping.value("jwks_file") {
            if value.isNull {
                jwt.jwksFile = nil
            } else if let path = value.readableFile() {
                // Read here, as key files are, so a file the gateway could not start with fails `ssegate check`.
                do {
                    _ = try JWKSFile.parse(try String(contentsOfFile: path, encoding: .utf8))
                    jwt.jwksFile = path
                } catch {
                    value.fail("cannot use '\(path)' as a JWKS file: \(error)")
                }
            }
        }
        if let value = mapping.value("jwks_url") {
            if value.isNull {
                jwt.jwksURL = nil
            } else if let url = self.url(value) {
                jwt.jwksURL = url
            }
        }
        if let value = mapping.value("jwks_refresh"), let refresh = value.duration(positive: true) {
            jwt.jwksRefresh = refresh
        }
        // Zero would let every token naming an unknown kid trigger a fetch from the identity provider.
        if let value = mapping.value("jwks_min_refresh"), let minimum = value.duration(positive: true) {
            jwt.jwksMinRefresh = minimum
        }
        if let value = mapping.value("issuer") {
            jwt.issuer = value.isNull ? nil : value.nonEmptyString("an issuer") ?? jwt.issuer
        }
        if let value = mapping.value("audience") {
            jwt.audience = value.isNull ? nil : value.nonEmptyString("an audience") ?? jwt.audience
        }
        if let value = mapping.value("leeway"), let leeway = value.duration() {
            jwt.leewaySeconds = leeway.nanoseconds / 1_000_000_000
        }
        if let value = mapping.value("cookie") {
            if value.isNull {
                jwt.credentials.cookieName = nil
            } else if let name = value.nonEmptyString("a cookie name") {
                if name.utf8.allSatisfy(self.isTokenByte) {
                    jwt.credentials.cookieName = name
                } else {
                    value.fail("'\(name)' is not a valid cookie name")
                }
            }
        }
        if let value = mapping.value("allow_query_token"), let allow = value.bool() {
            jwt.credentials.allowQueryToken = allow
        }
        if let value = mapping.value("claim"), let claim = value.nonEmptyString("a claim name") {
            jwt.claim = claim
        }
        if let value = mapping.value("default_allow"), let items = value.list() {
            var grants: [FeedGrant] = []
            var isValid = true
            for item in items {
                guard let pattern = item.nonEmptyString("a path or pattern such as /rooms/*") else {
                    isValid = false
                    continue
                }
                do {
                    grants.append(try FeedGrant(parsing: pattern))
                } catch {
                    item.fail("\(error)")
                    isValid = false
                }
            }
            if isValid { jwt.defaultAllow = grants }
        }
    }

    /// One `keys:` entry: `{ file, alg, kid }`. The file is read and parsed here, so a key that cannot verify
    /// anything fails `ssegate check` at its line rather than the first request.
    private static func jwtKey(_ item: ConfigValue) -> JWTKeySettings? {
        guard let mapping = item.mapping() else { return nil }
        let fileValue = mapping.required("file")
        let file = fileValue?.readableFile()
        var algorithm: JWTSigningAlgorithm?
        if let value = mapping.required("alg") {
            algorithm = value.choice(JWTSigningAlgorithm.allCases.map(\.rawValue)).flatMap(
                JWTSigningAlgorithm.init(rawValue:)
            )
        }
        var keyID: String?
        if let value = mapping.value("kid"), !value.isNull {
            guard let kid = value.nonEmptyString("a key id") else { return nil }
            keyID = kid
        }
        guard let fileValue, let file, let algorithm else { return nil }
        let key = JWTKeySettings(file: file, algorithm: algorithm, keyID: keyID)
        do {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            _ = try JWTKeyMaterial.parse(key, text: text)
        } catch {
            let kind = algorithm.isSymmetric ? "a secret" : "a PEM public key"
            fileValue.fail("cannot use '\(file)' as \(kind) for \(algorithm.rawValue): \(error)")
            return nil
        }
        return key
    }

    private static func applyForward(_ mapping: ConfigMapping, to forward: inout ForwardAuthConfig) {
        if let value = mapping.value("url") {
            if value.isNull {
                forward.url = nil
            } else if let url = self.url(value) {
                forward.url = url
            }
        }
        if let value = mapping.value("ttl"), let ttl = value.duration() {
            forward.ttl = ttl
        }
        if let value = mapping.value("max_entries"), let count = value.integer(atLeast: 1) {
            forward.maxEntries = count
        }
        if let value = mapping.value("max_concurrent"), let count = value.integer(atLeast: 1) {
            forward.maxConcurrent = count
        }
        if let value = mapping.value("queue_timeout"), let wait = value.duration() {
            forward.queueTimeout = wait
        }
        if let value = mapping.value("timeout"), let timeout = value.duration(positive: true) {
            forward.timeout = timeout
        }
        if let value = mapping.value("recheck"), let recheck = value.duration(positive: true) {
            forward.recheck = recheck
        }
        if let value = mapping.value("grant_header"), let name = value.nonEmptyString("a header name") {
            if name.utf8.allSatisfy(self.isTokenByte) {
                forward.grantHeader = name
            } else {
                value.fail("'\(name)' is not a valid header name")
            }
        }
    }

    /// An http(s) URL without placeholders (the auth endpoints are the same for every template value).
    private static func url(_ value: ConfigValue) -> UpstreamURL? {
        guard let text = value.nonEmptyString("a URL such as https://id.example.com/.well-known/jwks.json") else {
            return nil
        }
        do {
            let url = try UpstreamURL(parsing: text)
            guard url.placeholderNames.isEmpty else {
                value.fail("an auth URL cannot have placeholders such as '{\(url.placeholderNames[0])}'")
                return nil
            }
            return url
        } catch {
            value.fail(error.message)
            return nil
        }
    }

    /// What a feed's effective `auth` lacks to work, or nil: `jwt` and `optional` need a key source, `forward`
    /// needs a URL. Checked on each feed (a feed may get its mode from `defaults:` and its keys from its own
    /// `auth:`, or the other way round). `sources` are the keys (under `auth.`) that would have supplied what
    /// is missing: when one of them was written but reported bad, the problem is that error, not a second one.
    static func authProblem(_ auth: AuthConfig) -> (message: String, sources: [String])? {
        switch auth.mode {
        case .none:
            return nil
        case .jwt, .optional:
            let jwt = auth.jwt
            if jwt.keys.isEmpty && jwt.jwksFile == nil && jwt.jwksURL == nil {
                return (
                    "auth mode '\(auth.mode.rawValue)' needs keys: set auth.jwt.keys, auth.jwt.jwks_file or "
                        + "auth.jwt.jwks_url",
                    ["jwt.keys", "jwt.jwks_file", "jwt.jwks_url"]
                )
            }
            return nil
        case .forward:
            return auth.forward.url == nil ? ("auth mode 'forward' needs auth.forward.url", ["forward.url"]) : nil
        }
    }
}
