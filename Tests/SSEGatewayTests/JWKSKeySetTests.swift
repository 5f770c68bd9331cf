import Foundation
import JWTKit
import NIOCore
import XCTest

@testable import SSEGateway

/// What a fetched JWKS document yields: the usable keys pinned to their `alg`, and a reason for every key
/// that is skipped instead of failing the set.
final class JWKSKeySetTests: XCTestCase {
    private func build(_ json: String, reserved: Set<String> = []) async throws(JWKSDocumentError) -> JWKSKeySet.Outcome
    {
        try await JWKSKeySet.build(from: ByteBuffer(string: json), reservedKeyIDs: reserved)
    }

    func testUsableKeysArePinnedAndEveryOtherKeyIsSkippedWithAReason() async throws {
        let ec = ES256PrivateKey().publicKey.parameters!
        let other = ES256PrivateKey().publicKey.parameters!
        func ecKey(_ fields: String) -> String {
            #"{"kty": "EC", "crv": "P-256", "x": "\#(ec.x)", "y": "\#(ec.y)", \#(fields)}"#
        }
        let json = """
            {"keys": [
              \(ecKey(#""kid": "good", "alg": "ES256", "use": "sig""#)),
              {"kty": "oct", "kid": "secret", "alg": "HS256", "k": "c2VjcmV0"},
              {"kty": "EC", "crv": "P-521", "kid": "big", "alg": "ES512", "x": "AA", "y": "AA"},
              \(ecKey(#""alg": "ES256""#)),
              \(ecKey(#""kid": "no-alg""#)),
              \(ecKey(#""kid": "enc", "alg": "ES256", "use": "enc""#)),
              \(ecKey(#""kid": "private", "alg": "ES256", "d": "AAAA""#)),
              \(ecKey(#""kid": "rsa-label", "alg": "RS256""#)),
              {"kty": "EC", "crv": "P-256", "kid": "good", "alg": "ES256", "x": "\(other.x)", "y": "\(other.y)"},
              \(ecKey(#""kid": "from-file", "alg": "ES256""#)),
              {"kty": "PQC", "kid": "future", "alg": "ES256"},
              42
            ]}
            """
        let outcome = try await self.build(json, reserved: ["from-file"])
        let keySet = try XCTUnwrap(outcome.keySet)
        XCTAssertEqual(keySet.pinnedByKeyID, ["good": .es256])
        XCTAssertEqual(outcome.skipped.count, 11, "\(outcome.skipped)")
        let expected = [
            "key 'secret': unsupported 'alg' HS256",
            "key 'big': unsupported 'alg' ES512",
            "key #4: no 'kid'",
            "key 'no-alg': no 'alg'",
            "key 'enc': not a signing key",
            "key 'private': holds private key material",
            "key 'rsa-label': unusable key",
            "key 'good': kid appears twice",
            "key 'from-file': a configured key file has this kid",
            "key 'future': unsupported key",
            "key #12: no 'kid'",
        ]
        for (line, prefix) in zip(outcome.skipped, expected) {
            XCTAssertTrue(line.hasPrefix(prefix), "\(line) should start with \(prefix)")
        }
    }

    func testADocumentWithoutUsableKeysGivesNoSetAndGarbageThrows() async throws {
        let empty = try await self.build(#"{"keys": []}"#)
        XCTAssertNil(empty.keySet)
        let onlySecrets = try await self.build(#"{"keys": [{"kty": "oct", "kid": "s", "alg": "HS256", "k": "AA"}]}"#)
        XCTAssertNil(onlySecrets.keySet)
        XCTAssertEqual(onlySecrets.skipped.count, 1)
        for garbage in ["<html>busy</html>", #"{"keys": 5}"#, #"{"other": []}"#, ""] {
            do {
                _ = try await self.build(garbage)
                XCTFail("\(garbage) accepted")
            } catch {
                XCTAssertTrue(error.message.hasPrefix("not a JWKS document"), error.message)
            }
        }
    }
}
