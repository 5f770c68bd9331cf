import Foundation
import NIOConcurrencyHelpers
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Helpers shared by the `Config*Tests` files. An enum, not free functions, so the names cannot clash
/// with other test files of the target.
enum ConfigFixtures {
    /// Parses inline YAML; `file` is what errors print.
    static func parse(
        _ yaml: String,
        environment: [String: String] = [:],
        baseDirectory: String = "/config-tests-no-such-dir"
    ) throws(ConfigLoadError) -> GatewayConfig {
        try ConfigLoader.parse(yaml: yaml, file: "test.yaml", baseDirectory: baseDirectory, environment: environment)
    }

    /// The errors parsing `yaml` produces; fails the test (and returns []) when it parses.
    static func errors(
        _ yaml: String,
        environment: [String: String] = [:],
        baseDirectory: String = "/config-tests-no-such-dir",
        file: StaticString = #filePath,
        line: UInt = #line
    ) -> [ConfigError] {
        do {
            let config = try self.parse(yaml, environment: environment, baseDirectory: baseDirectory)
            XCTFail("expected errors, but the config parsed: \(config)", file: file, line: line)
            return []
        } catch {
            XCTAssertFalse(
                error.errors.isEmpty,
                "a ConfigLoadError must hold at least one error",
                file: file,
                line: line
            )
            return error.errors
        }
    }

    /// Asserts that parsing gives exactly one error, at `line`:`column`, whose message contains `message`.
    static func assertSingleError(
        _ yaml: String,
        line expectedLine: Int,
        column expectedColumn: Int,
        _ message: String,
        environment: [String: String] = [:],
        baseDirectory: String = "/config-tests-no-such-dir",
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let errors = self.errors(yaml, environment: environment, baseDirectory: baseDirectory, file: file, line: line)
        guard errors.count == 1, let error = errors.first else {
            XCTFail(
                "expected exactly one error, got \(errors.count):\n\(ConfigLoadError(errors: errors))",
                file: file,
                line: line
            )
            return
        }
        XCTAssertEqual(error.file, "test.yaml", file: file, line: line)
        XCTAssertEqual(error.line, expectedLine, "line of: \(error)", file: file, line: line)
        XCTAssertEqual(error.column, expectedColumn, "column of: \(error)", file: file, line: line)
        XCTAssertTrue(
            error.message.contains(message),
            "'\(error.message)' does not contain '\(message)'",
            file: file,
            line: line
        )
    }

    /// A fresh temporary folder, removed by the test case's teardown block.
    static func makeTemporaryDirectory(for testCase: XCTestCase) throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("ssegate-config-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        testCase.addTeardownBlock {
            try? FileManager.default.removeItem(atPath: path)
        }
        return path
    }

    /// Creates `relativePath` (and its folders) under `directory` with real PEM text, since the loader
    /// loads certificates and keys: a name with "ca" gets the test CA, one with "key" the private key,
    /// any other the certificate that goes with that key.
    static func touch(_ relativePath: String, in directory: String) throws {
        let url = URL(fileURLWithPath: directory).appendingPathComponent(relativePath)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let certificates = try Self.certificates()
        let name = url.lastPathComponent.lowercased()
        let source =
            name.contains("ca")
            ? certificates.caCertificate
            : name.contains("key") ? certificates.serverKey : certificates.serverCertificate
        try FileManager.default.copyItem(atPath: source, toPath: url.path)
    }

    /// One set of test certificates for the whole run (made with openssl on first use).
    static func certificates() throws -> TestCertificates {
        try TestCertificates.shared()
    }
}
