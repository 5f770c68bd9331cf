import Foundation

extension ConfigLoader {
    /// `access_log: stdout`, `access_log: <file path>` (relative to the config's folder), or `off` / null
    /// (the default). The file's folder must exist, so a typo fails `ssegate check` rather than the start.
    static func readAccessLog(_ value: ConfigValue) -> AccessLogDestination? {
        if value.isNull { return nil }
        guard let text = value.nonEmptyString("stdout, off or a file path") else { return nil }
        switch text {
        case "stdout": return .stdout
        case "off": return nil
        default: break
        }
        let resolved = value.context.resolvePath(text)
        let shown = resolved == text ? "'\(text)'" : "'\(text)' (resolved to '\(resolved)')"
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory) {
            guard !isDirectory.boolValue else {
                value.fail("access log \(shown) is a directory; name a file in it")
                return nil
            }
            return .file(resolved)
        }
        let folder = (resolved as NSString).deletingLastPathComponent
        guard FileManager.default.fileExists(atPath: folder.isEmpty ? "." : folder, isDirectory: &isDirectory),
            isDirectory.boolValue
        else {
            value.fail("the folder of access log \(shown) does not exist")
            return nil
        }
        return .file(resolved)
    }
}
