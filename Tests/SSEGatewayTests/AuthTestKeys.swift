import Foundation
import JWTKit
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Keys made at test time for the auth tests: RSA and Ed25519 with the `openssl` command (skipped without
/// it), EC with jwt-kit; PEM texts served to ``TokenVerifier`` through an in-memory file reader.
struct AuthTestKeys {
    var rsaPrivatePEM: String
    var rsaPublicPEM: String
    var edPrivatePEM: String
    var edPublicPEM: String
    var es256: ES256PrivateKey
    var es384: ES384PrivateKey

    static func make() throws -> AuthTestKeys {
        _ = try ExternalTool.openssl.require()
        let directory = try TestScratch.directory("jwt")
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        try TestCertificates.openssl([
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path("rsa.key"),
        ])
        try TestCertificates.openssl(["pkey", "-in", path("rsa.key"), "-pubout", "-out", path("rsa.pub")])
        try TestCertificates.openssl(["genpkey", "-algorithm", "ed25519", "-out", path("ed.key")])
        try TestCertificates.openssl(["pkey", "-in", path("ed.key"), "-pubout", "-out", path("ed.pub")])
        func read(_ name: String) throws -> String { try String(contentsOfFile: path(name), encoding: .utf8) }
        return AuthTestKeys(
            rsaPrivatePEM: try read("rsa.key"),
            rsaPublicPEM: try read("rsa.pub"),
            edPrivatePEM: try read("ed.key"),
            edPublicPEM: try read("ed.pub"),
            es256: ES256PrivateKey(),
            es384: ES384PrivateKey()
        )
    }
}

/// An in-memory stand-in for the key files a ``JWTSettings`` names.
struct FakeKeyFiles {
    var files: [String: String]

    struct Missing: Error { var path: String }

    func read(_ path: String) throws -> String {
        guard let text = self.files[path] else { throw Missing(path: path) }
        return text
    }
}

/// A token put together by hand (for headers jwt-kit would not write, such as `alg: none`).
enum HandMadeToken {
    static func base64URL(_ text: String) -> String {
        Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// The decoded header of `token`, to check what jwt-kit wrote.
    static func header(of token: String) -> String? {
        var base64 = String(token.prefix { $0 != "." }.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64).map { String(decoding: $0, as: UTF8.self) }
    }

    static func make(header: String, payload: String, signature: String = "") -> String {
        "\(Self.base64URL(header)).\(Self.base64URL(payload)).\(signature)"
    }
}
