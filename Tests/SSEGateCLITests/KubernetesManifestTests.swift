import Foundation
import XCTest

@testable import SSEGateTestSupport

/// deploy/kubernetes, checked offline as `.ci/run` does: every manifest against the Kubernetes schemas
/// (kubernetes-validate, strict), and `ssegate check` on the ConfigMap's config. A broken copy must fail,
/// naming the file, so the check can fail at all.
final class KubernetesManifestTests: XCTestCase {
    private static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    private static let manifests = packageRoot.appendingPathComponent("deploy/kubernetes")

    func testTheShippedManifestsAndTheirConfigValidate() throws {
        _ = try ExternalTool.kubernetesValidate.require()
        let result = try Self.validate(Self.manifests)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("ok"), result.output)
    }

    /// Three faults in one copy (one validator run: loading the schemas is most of its time), each reported.
    func testABrokenCopyFailsNamingEachFault() throws {
        _ = try ExternalTool.kubernetesValidate.require()
        let copy = try self.copyOfManifests()
        // A misspelled field in a built-in kind.
        try Self.edit(copy.appendingPathComponent("base/deployment.yaml"), "maxSurge: 1", "maxSurg: 1")
        // A config `ssegate check` rejects, reported at its line and column in the ConfigMap's file.
        let configMap = copy.appendingPathComponent("base/configmap.yaml")
        try Self.edit(configMap, "max_clients: 20000", "max_clientz: 20000")
        let line = try String(contentsOf: configMap, encoding: .utf8).components(separatedBy: "\n")
            .firstIndex { $0.contains("max_clientz") }.map { $0 + 1 }
        // A misspelled field in the ServiceMonitor (a custom resource, checked against its own schema).
        try Self.edit(copy.appendingPathComponent("monitoring/servicemonitor.yaml"), "interval: 15s", "intervall: 15s")

        let result = try Self.validate(copy)
        XCTAssertEqual(result.status, 1, result.output)
        XCTAssertTrue(result.output.contains("base/deployment.yaml did not validate"), result.output)
        XCTAssertTrue(result.output.contains("'maxSurg' was unexpected"), result.output)
        XCTAssertTrue(
            result.output.contains("base/configmap.yaml:\(line ?? 0):7: unknown key 'max_clientz'"),
            result.output
        )
        XCTAssertTrue(result.output.contains("'intervall' was unexpected"), result.output)
    }

    // MARK: Helpers

    private func copyOfManifests() throws -> URL {
        let scratch = try TestScratch.directory("kubernetes")
        let copy = scratch.appendingPathComponent("kubernetes")
        try FileManager.default.copyItem(at: Self.manifests, to: copy)
        return copy
    }

    private static func edit(_ file: URL, _ old: String, _ new: String) throws {
        let text = try String(contentsOf: file, encoding: .utf8)
        XCTAssertTrue(text.contains(old), "\(file.path) no longer contains '\(old)': update the test")
        try text.replacingOccurrences(of: old, with: new).write(to: file, atomically: true, encoding: .utf8)
    }

    /// Runs the copy's own validate.py (so a broken copy is checked by the script beside it).
    private static func validate(_ folder: URL) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", folder.appendingPathComponent("validate.py").path, "--ssegate",
            try CommandLineTests.binary().path, folder.path,
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
