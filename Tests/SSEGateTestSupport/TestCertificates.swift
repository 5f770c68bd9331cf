import Foundation
import NIOConcurrencyHelpers

/// Certificates made at test time with the `openssl` command: a private CA, a server certificate for
/// 127.0.0.1/localhost signed by it (RSA or ECDSA), and a client certificate for mTLS.
struct TestCertificates {
    enum KeyType { case rsa, ecdsa }

    let directory: URL
    var caCertificate: String { self.directory.appendingPathComponent("ca.pem").path }
    var serverCertificate: String { self.directory.appendingPathComponent("server.pem").path }
    var serverKey: String { self.directory.appendingPathComponent("server.key").path }
    var clientCertificate: String { self.directory.appendingPathComponent("client.pem").path }
    var clientKey: String { self.directory.appendingPathComponent("client.key").path }

    private static let made = NIOLockedValueBox<TestCertificates?>(nil)

    /// One set of ECDSA test certificates for the whole run (made with openssl on first use).
    static func shared() throws -> TestCertificates {
        try Self.made.withLockedValue { made in
            if let made { return made }
            let certificates = try TestCertificates.make(keyType: .ecdsa)
            made = certificates
            return certificates
        }
    }

    /// Skips the test when the `openssl` command is missing (fails it under `SSEGATE_REQUIRE_TOOLS=1`).
    static func make(keyType: KeyType = .rsa) throws -> TestCertificates {
        _ = try ExternalTool.openssl.require()
        let directory = try TestScratch.directory("certs")
        let certificates = TestCertificates(directory: directory)
        let keyArguments: [String] =
            keyType == .rsa
            ? ["-newkey", "rsa:2048"]
            : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        try Self.openssl(
            ["req", "-x509", "-nodes", "-days", "2"] + keyArguments + [
                "-keyout", path("ca.key"), "-out", path("ca.pem"), "-subj", "/CN=ssegate test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ]
        )
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: path("server.ext"), atomically: true, encoding: .utf8)
        try "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n".write(
            toFile: path("client.ext"),
            atomically: true,
            encoding: .utf8
        )
        for name in ["server", "client"] {
            try Self.openssl(
                ["req", "-nodes"] + keyArguments + [
                    "-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj",
                    "/CN=\(name == "server" ? "localhost" : "ssegate test client")",
                ]
            )
            try Self.openssl([
                "x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                "-CAcreateserial",
                "-days", "2", "-out", path("\(name).pem"), "-extfile", path("\(name).ext"),
            ])
        }
        return certificates
    }

    /// Runs `openssl` with `arguments`; throws with its standard error when it fails. Key-making tests share it.
    static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw CertificateError(message: "openssl \(arguments.first ?? "") failed: \(text)")
        }
    }

    struct CertificateError: Error { var message: String }
}
