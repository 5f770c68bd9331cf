import AsyncHTTPClient
import Foundation
import JWTKit
import NIOCore
import NIOSSL
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// ``TokenVerifier`` with `jwks_url`, against a JWKS served by the test process on a real socket: the start-up
/// fetch, key rotation picked up without a restart (through the unknown-`kid` refetch and through the periodic
/// refresh), the refetch rate limit, a provider that fails or is down at start, and the lifecycle of
/// `runRefresh()`.
final class AuthJWKSURLTests: XCTestCase {
    private var client: HTTPClient!
    private let logs = LogRecorder()

    override func setUp() async throws {
        // A provider that is down refuses connections; AsyncHTTPClient retries a refused connect until its
        // connect timeout (else the fetch timeout), so a short one keeps the outage tests short.
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .milliseconds(300)
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    override func tearDown() async throws {
        try await self.client.shutdown()
    }

    // MARK: helpers

    fileprivate static func claims(_ feeds: [String]) -> TokenClaims {
        TokenClaims(expiration: Date().timeIntervalSince1970 + 300, subject: "user-1", stringLists: ["feeds": feeds])
    }

    private func verifier(
        _ server: JWKSTestServer,
        refresh: TimeAmount = .minutes(10),
        minRefresh: TimeAmount = .seconds(30),
        keys: [JWTKeySettings] = [],
        files: [String: String] = [:],
        client: HTTPClient? = nil,
        fetchTimeout: TimeAmount = .seconds(2)
    ) async throws -> TokenVerifier {
        let settings = JWTSettings(
            keys: keys,
            jwksURL: try UpstreamURL(parsing: server.url),
            jwksRefresh: refresh,
            jwksMinRefresh: minRefresh
        )
        return try await TokenVerifier(
            settings: settings,
            httpClient: client ?? self.client,
            logger: self.logs.logger(),
            jwksFetchTimeout: fetchTimeout,
            readFile: FakeKeyFiles(files: files).read
        )
    }

    /// Runs the verifier's refresh loop until the test ends, and checks that it ends when cancelled.
    private func runRefresh(_ verifier: TokenVerifier) -> Task<Void, Never> {
        let task = Task { await verifier.runRefresh() }
        self.addTeardownBlock {
            task.cancel()
            await task.value
        }
        return task
    }

    private func assertAccepted(
        _ verifier: TokenVerifier,
        _ token: String,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async {
        let result = await verifier.verify(token)
        guard case .success(let verified) = result else { return XCTFail("refused: \(result)", file: file, line: line) }
        XCTAssertEqual(verified.grants.map(\.description), ["/prices"], file: file, line: line)
    }

    private func lines(_ prefix: String) -> Int {
        self.logs.recorded.filter { $0.message.hasPrefix(prefix) }.count
    }

    // MARK: tests

    func testTheStartUpFetchServesES256AndRS256Keys() async throws {
        let rsa = try AuthTestKeys.make()
        let (modulus, exponent) = try Insecure.RSA.PublicKey(pem: rsa.rsaPublicPEM).getKeyPrimitives()
        let rsaJWK = JWK.rsa(
            .rs256,
            identifier: "r1",
            modulus: modulus.base64URLEncoded,
            exponent: exponent.base64URLEncoded
        )
        let ec = JWKSTestKey(kid: "e1")
        let server = try await JWKSTestServer.start(.keys([ec.jwk, rsaJWK]))
        let verifier = try await self.verifier(server)
        XCTAssertEqual(server.requests, 1, "fetched while the verifier was built")
        XCTAssertEqual(server.acceptHeaders, ["application/json"])

        await self.assertAccepted(verifier, try await ec.token())
        let rsaSigner = JWTKeyCollection()
        await rsaSigner.add(
            rsa: try Insecure.RSA.PrivateKey(pem: rsa.rsaPrivatePEM),
            digestAlgorithm: .sha256,
            kid: "r1"
        )
        await self.assertAccepted(verifier, try await rsaSigner.sign(Self.claims(["/prices"]), kid: "r1"))

        // The pin holds for URL keys too: the RSA key's `kid` with the EC key's signature and `alg` is refused.
        let swapped = JWTKeyCollection()
        await swapped.add(ecdsa: ec.key, kid: "r1")
        let result = await verifier.verify(try await swapped.sign(Self.claims(["/prices"]), kid: "r1"))
        XCTAssertEqual(result, .failure(.algorithmNotAllowed))
        // An unknown `kid` right after the start-up fetch is refused without another fetch.
        let stranger = await verifier.verify(try await JWKSTestKey(kid: "nobody").token())
        XCTAssertEqual(stranger, .failure(.unknownKeyID))
        XCTAssertEqual(server.requests, 1)
        XCTAssertEqual(self.lines("JWKS fetch failed"), 0)
    }

    func testANewKidIsPickedUpByTheUnknownKidRefetchAndConcurrentTokensShareOneFetch() async throws {
        let old = JWKSTestKey(kid: "2026-01")
        let new = JWKSTestKey(kid: "2026-02")
        let server = try await JWKSTestServer.start(.keys([old.jwk]))
        let verifier = try await self.verifier(server, minRefresh: .seconds(1))
        let newToken = try await new.token()
        server.reply = .keys([old.jwk, new.jwk])

        // Within `jwks_min_refresh` of the start-up fetch: refused at once, nothing fetched.
        let early = await verifier.verify(newToken)
        XCTAssertEqual(early, .failure(.unknownKeyID))
        XCTAssertEqual(server.requests, 1)

        try await Task.sleep(nanoseconds: 1_050_000_000)
        let results = await withTaskGroup(of: Result<VerifiedToken, TokenRefusal>.self) { group in
            for _ in 0..<20 { group.addTask { await verifier.verify(newToken) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(results.filter { (try? $0.get()) != nil }.count, 20, "\(results)")
        XCTAssertEqual(server.requests, 2, "twenty tokens, one refetch")
        await self.assertAccepted(verifier, try await old.token())
        XCTAssertEqual(server.requests, 2)
    }

    func testUnknownKidRefetchesAreRateLimited() async throws {
        let known = JWKSTestKey(kid: "known")
        let server = try await JWKSTestServer.start(.keys([known.jwk]))
        let verifier = try await self.verifier(server, minRefresh: .seconds(1))
        let strangers = try await (0..<5).asyncMap { _ in try await JWKSTestKey(kid: UUID().uuidString).token() }
        try await Task.sleep(nanoseconds: 1_050_000_000)
        let started = NIODeadline.now()
        for round in 0..<3 {
            let refused = await withTaskGroup(of: Bool.self) { group in
                for index in 0..<50 {
                    group.addTask { await verifier.verify(strangers[index % 5]) == .failure(.unknownKeyID) }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            XCTAssertEqual(refused, 50, "round \(round)")
        }
        XCTAssertLessThan(NIODeadline.now() - started, .seconds(1), "the rounds ran within one interval")
        XCTAssertEqual(server.requests, 2, "150 tokens with random kids within one interval: one refetch")
        // An HMAC `alg` can never come from a JWKS URL: no fetch for it even when one would be allowed.
        try await Task.sleep(nanoseconds: 1_050_000_000)
        let hmac = JWTKeyCollection()
        await hmac.add(hmac: HMACKey(from: String(repeating: "s", count: 32)), digestAlgorithm: .sha256, kid: "h")
        let hmacResult = await verifier.verify(try await hmac.sign(Self.claims(["/prices"]), kid: "h"))
        XCTAssertEqual(hmacResult, .failure(.unknownKeyID))
        XCTAssertEqual(server.requests, 2)
        await self.assertAccepted(verifier, try await known.token())
    }

    func testThePeriodicRefreshRotatesKeysAndStopsWhenCancelled() async throws {
        let old = JWKSTestKey(kid: "old")
        let new = JWKSTestKey(kid: "new")
        let server = try await JWKSTestServer.start(.keys([old.jwk]))
        // A long `jwks_min_refresh`: only the periodic refresh can bring the new key.
        let verifier = try await self.verifier(server, refresh: .milliseconds(200), minRefresh: .seconds(3600))
        let refresh = self.runRefresh(verifier)
        let (oldToken, newToken) = (try await old.token(), try await new.token())
        server.reply = .keys([new.jwk])

        try await eventually("the new key arrives with a refresh", timeout: .seconds(5)) {
            await (try? verifier.verify(newToken).get()) != nil
        }
        let revoked = await verifier.verify(oldToken)
        XCTAssertEqual(revoked, .failure(.unknownKeyID), "a key gone from the set is gone from the verifier")
        XCTAssertEqual(self.lines("JWKS keys loaded"), 2, "one line per new document, not per refresh")

        refresh.cancel()
        await refresh.value
        let afterStop = server.requests
        try await Task.sleep(nanoseconds: 500_000_000)
        XCTAssertEqual(server.requests, afterStop, "nothing fetches after runRefresh() ended")
        let stopped = await verifier.verify(try await JWKSTestKey(kid: "later").token())
        XCTAssertEqual(stopped, .failure(.unknownKeyID))
        XCTAssertEqual(server.requests, afterStop)
    }

    func testAFailingProviderKeepsTheLastGoodSetAndIsLoggedOncePerOutage() async throws {
        let key = JWKSTestKey(kid: "k1")
        let server = try await JWKSTestServer.start(.keys([key.jwk]))
        let verifier = try await self.verifier(server, refresh: .milliseconds(100), minRefresh: .milliseconds(50))
        _ = self.runRefresh(verifier)
        let token = try await key.token()

        let failures: [JWKSTestServer.Reply] = [
            .raw(status: .internalServerError, body: "oops"),
            .raw(status: .ok, body: "<html>not json</html>"),
            .raw(status: .ok, body: #"{"keys": [{"kty": "oct", "kid": "s", "alg": "HS256", "k": "AA"}]}"#),
        ]
        for reply in failures {
            server.reply = reply
            let before = server.requests
            try await eventually("three failed fetches", timeout: .seconds(5)) { server.requests >= before + 3 }
            await self.assertAccepted(verifier, token)
        }
        try await server.stop()
        try await Task.sleep(nanoseconds: 400_000_000)
        await self.assertAccepted(verifier, token)
        // Tokens with unknown kids during the outage add no log lines either.
        for _ in 0..<10 { _ = await verifier.verify(try await JWKSTestKey(kid: UUID().uuidString).token()) }
        XCTAssertEqual(self.lines("JWKS fetch failed"), 1, "\(self.logs.recorded.map(\.message))")
        XCTAssertEqual(self.lines("JWKS key skipped"), 0, "a document without usable keys is a failure")

        server.reply = .keys([key.jwk])
        try await server.start()
        try await eventually("the recovery is logged", timeout: .seconds(5)) {
            self.lines("JWKS fetch succeeded again") == 1
        }
        await self.assertAccepted(verifier, token)
        XCTAssertEqual(self.lines("JWKS fetch failed"), 1)
        XCTAssertEqual(self.lines("JWKS keys loaded"), 1, "the same document again is no new set")
    }

    func testAProviderDownAtStartUpRefusesUnknownKidUntilAFetchSucceeds() async throws {
        let key = JWKSTestKey(kid: "k1")
        let server = try await JWKSTestServer.stopped(.keys([key.jwk]))
        let verifier = try await self.verifier(server, refresh: .milliseconds(200), minRefresh: .seconds(3600))
        XCTAssertEqual(self.lines("JWKS fetch failed"), 1, "the start-up failure is logged, not thrown")
        let token = try await key.token()
        let refused = await verifier.verify(token)
        XCTAssertEqual(refused, .failure(.unknownKeyID))

        _ = self.runRefresh(verifier)
        try await server.start()
        try await eventually("a refresh brings the keys", timeout: .seconds(5)) {
            await (try? verifier.verify(token).get()) != nil
        }
        XCTAssertEqual(self.lines("JWKS fetch succeeded again"), 1)
        XCTAssertEqual(self.lines("JWKS fetch failed"), 1)
    }

    func testAKidInAFileAndTheURLIsTheFilesKey() async throws {
        let fileKey = JWKSTestKey(kid: "shared")
        let urlKey = JWKSTestKey(kid: "shared")
        let server = try await JWKSTestServer.start(.keys([urlKey.jwk, JWKSTestKey(kid: "url-only").jwk]))
        let verifier = try await self.verifier(
            server,
            keys: [JWTKeySettings(file: "shared.pem", algorithm: .es256, keyID: "shared")],
            files: ["shared.pem": fileKey.key.publicKey.pemRepresentation]
        )
        await self.assertAccepted(verifier, try await fileKey.token())
        let impostor = await verifier.verify(try await urlKey.token())
        XCTAssertEqual(impostor, .failure(.badSignature))
        let skipped = self.logs.recorded.filter { $0.message == "JWKS key skipped" }
        XCTAssertEqual(skipped.count, 1)
        XCTAssertTrue(skipped.first?.metadata["reason"]?.contains("key file has this kid") == true, "\(skipped)")
    }

    func testAnHTTPSURLIsFetchedOverVerifiedTLS() async throws {
        let certificates = try TestCertificates.shared()
        let key = JWKSTestKey(kid: "k1")
        let server = try await JWKSTestServer.start(.keys([key.jwk]), tls: certificates)
        XCTAssertTrue(server.url.hasPrefix("https://"))
        var configuration = HTTPClient.Configuration()
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(certificates.caCertificate)
        configuration.tlsConfiguration = tls
        let trusting = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        defer { _ = trusting.shutdown() }
        let verifier = try await self.verifier(server, client: trusting)
        await self.assertAccepted(verifier, try await key.token())
        XCTAssertEqual(self.lines("JWKS fetch failed"), 0)

        // The default trust roots do not know the test CA: the fetch fails, the key stays unknown.
        let untrusting = try await self.verifier(server)
        let refused = await untrusting.verify(try await key.token())
        XCTAssertEqual(refused, .failure(.unknownKeyID))
        XCTAssertEqual(self.lines("JWKS fetch failed"), 1)
    }

    func testAProviderThatStopsAnsweringIsBoundedByTheFetchTimeout() async throws {
        // Before the head (AsyncHTTPClient's deadline) and in the middle of the body (which that deadline does
        // not cover): the whole exchange is bounded.
        for stall in [JWKSTestServer.Reply.Stall.beforeHead, .inBody] {
            let server = try await JWKSTestServer.start(.stalled(stall))
            let failedBefore = self.lines("JWKS fetch failed")
            let started = NIODeadline.now()
            let verifier = try await self.verifier(server, fetchTimeout: .milliseconds(300))
            let waited = NIODeadline.now() - started
            XCTAssertGreaterThanOrEqual(waited, .milliseconds(250), "\(stall)")
            XCTAssertLessThan(waited, .seconds(2), "\(stall): the start-up fetch gave up after the fetch timeout")
            XCTAssertEqual(server.requests, 1)
            XCTAssertEqual(self.lines("JWKS fetch failed"), failedBefore + 1)
            let refused = await verifier.verify(try await JWKSTestKey(kid: "k1").token())
            XCTAssertEqual(refused, .failure(.unknownKeyID))
            try await server.stop()
        }
    }

    func testAJWKSURLWithoutAnHTTPClientIsASetupError() async throws {
        let settings = JWTSettings(jwksURL: try UpstreamURL(parsing: "https://id.example.com/jwks.json"))
        do {
            _ = try await TokenVerifier(settings: settings)
            XCTFail("built without a client")
        } catch {
            XCTAssertTrue(error.message.contains("jwks_url"), error.message)
        }
    }
}

extension Data {
    fileprivate var base64URLEncoded: String {
        self.base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}

extension Sequence {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
