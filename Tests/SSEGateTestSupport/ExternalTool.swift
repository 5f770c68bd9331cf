import Foundation
import XCTest

/// A program from the user's machine that some tests drive: headless Chromium, HAProxy, nginx, curl, openssl,
/// and kubernetes-validate (from PyPI) for the Kubernetes manifests.
///
/// `swift test` must pass on a machine with only the Swift toolchain, so a test whose program is missing
/// is skipped with one line naming the package. `.ci/run` installs every program and sets
/// `SSEGATE_REQUIRE_TOOLS=1`; there a missing program fails the test instead, so CI never passes by
/// skipping.
enum ExternalTool: String {
    case chromium
    case haproxy
    case nginx
    case curl
    case openssl
    case kubernetesValidate = "kubernetes-validate"

    /// The package that installs it, and from where.
    var package: String {
        switch self {
        case .kubernetesValidate: return "PyPI package '\(self.rawValue)'"
        default: return "Debian package '\(self.rawValue)'"
        }
    }

    /// Where to look besides `PATH` (HAProxy and nginx live in /usr/sbin; Chromium has several names).
    private var names: [String] {
        switch self {
        case .chromium: return ["chromium", "chromium-browser", "google-chrome"]
        default: return [self.rawValue]
        }
    }

    /// The executable's path, or nil when it is not installed.
    var path: String? {
        let searched = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        let directories = searched + ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/bin"]
        for name in self.names {
            for directory in directories where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
                return "\(directory)/\(name)"
            }
        }
        return nil
    }

    /// True when `SSEGATE_REQUIRE_TOOLS=1`: a missing program is a failure, not a skip.
    static var required: Bool { ProcessInfo.processInfo.environment["SSEGATE_REQUIRE_TOOLS"] == "1" }

    /// The executable's path; when it is missing, skips the test (or fails it under `SSEGATE_REQUIRE_TOOLS=1`).
    func require(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        if let path = self.path { return path }
        let missing = "\(self.rawValue) is not installed (\(self.package))"
        guard Self.required else { throw XCTSkip("\(missing); skipped", file: file, line: line) }
        XCTFail("\(missing), and SSEGATE_REQUIRE_TOOLS=1 requires it", file: file, line: line)
        throw ToolMissing(tool: self)
    }

    struct ToolMissing: Error {
        var tool: ExternalTool
    }
}
