import FuzzSupport
import SSEGateway

/// Any bytes as a config file: `ConfigLoader.parse` returns a config or throws errors, each at a
/// `FILE:LINE:COLUMN` inside the text; it never traps.
public enum ConfigTarget {
    static let file = "fuzz.yaml"
    /// What `${NAME}` expands to; the seeds use these names.
    static let environment = ["PORT": "8080", "HOST": "127.0.0.1", "TOKEN": "s3cret", "EMPTY": ""]
    /// TLS files are not opened: the check that would build contexts from them accepts everything.
    static let tlsCheck = TLSFileCheck(listener: { _ in }, upstream: { _ in })

    public static func run(_ input: [UInt8]) {
        let yaml = String(decoding: input, as: UTF8.self)
        do {
            _ = try ConfigLoader.parse(
                yaml: yaml,
                file: Self.file,
                baseDirectory: "/nonexistent-fuzz-config-dir",
                environment: Self.environment,
                tlsCheck: Self.tlsCheck
            )
        } catch {
            Self.check(error, yaml)
        }
    }

    static func check(_ error: ConfigLoadError, _ yaml: String) {
        guard !error.errors.isEmpty else {
            fuzzFailure("a ConfigLoadError without errors for \(String(reflecting: yaml))")
        }
        // libyaml ends lines at CR, LF, CRLF, NEL, LS and PS; an error may point just past the last line.
        let breaks: Set<Unicode.Scalar> = ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"]
        let lines = yaml.unicodeScalars.filter { breaks.contains($0) }.count + 1
        let scalars = yaml.unicodeScalars.count
        for each in error.errors {
            guard each.line >= 1, each.line <= lines + 1, each.column >= 1, each.column <= scalars + 2 else {
                fuzzFailure("error outside the text (\(lines) lines): \(each) for \(String(reflecting: yaml))")
            }
            guard each.file == Self.file, !each.message.isEmpty,
                each.description.hasPrefix("\(Self.file):\(each.line):\(each.column): ")
            else {
                fuzzFailure("not FILE:LINE:COLUMN: message: \(String(reflecting: each.description))")
            }
        }
    }
}
