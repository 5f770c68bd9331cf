import Foundation

/// One temporary directory per test process for the files tests make (certificates, configs), removed
/// when the process exits, so that runs leave nothing behind in /tmp.
enum TestScratch {
    static let root: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ssegate-tests-\(getpid())-\(UUID().uuidString.prefix(8))"
        )
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: TestScratch.root) }
        return url
    }()

    /// A new directory under the process's root, named `prefix` and a unique suffix.
    static func directory(_ prefix: String) throws -> URL {
        let url = Self.root.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
