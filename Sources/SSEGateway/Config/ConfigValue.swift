import Foundation
import NIOCore
import Yams

/// One value of the config with its key path, converted to the type a key expects.
///
/// Every accessor returns nil after reporting an error at the value's position, so the loader
/// writes `if let x = value.duration() { settings.x = x }` and simply keeps going.
/// Scalars are `${ENV}`-expanded before they are interpreted, so `retry: ${RETRY}` works too.
struct ConfigValue {
    let node: Node
    /// Dotted key path shown in messages, e.g. `feeds[0].upstream.url`.
    let path: String
    let context: ConfigContext

    init(_ node: Node, path: String, context: ConfigContext) {
        self.node = node
        self.path = path
        self.context = context
    }

    var mark: Mark? { self.node.mark }

    /// True for an empty value, `~` or `null` written without quotes (YAML's nulls).
    var isNull: Bool {
        Self.isNull(self.node)
    }

    static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else {
            return false
        }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// Reports `PATH: message` at this value.
    func fail(_ message: String) {
        self.context.report("\(self.path): \(message)", at: self.mark, path: self.path)
    }

    /// How a node is described after "got": `a list`, `a mapping`, `no value`, `'15'`.
    static func kind(of node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar): return Self.isNull(node) ? "no value" : "'\(scalar.string)'"
        }
    }

    // MARK: - Structure

    /// This value as a mapping reader, or nil (reported) when it is something else.
    func mapping() -> ConfigMapping? {
        guard case .mapping(let mapping) = self.node else {
            self.fail("expected a mapping, got \(Self.kind(of: self.node))")
            return nil
        }
        return ConfigMapping(mapping, path: self.path, context: self.context)
    }

    /// This value's items (paths `listen[0]`, `listen[1]`, …), or nil (reported) when it is not a list.
    func list() -> [ConfigValue]? {
        guard case .sequence(let sequence) = self.node else {
            self.fail("expected a list, got \(Self.kind(of: self.node))")
            return nil
        }
        return sequence.enumerated().map { index, item in
            ConfigValue(item, path: "\(self.path)[\(index)]", context: self.context)
        }
    }

    // MARK: - Scalars

    /// The scalar's text after `${ENV}` expansion; nil (reported) for lists, mappings and nulls.
    /// `expected` completes "expected …" in the message.
    func text(expected: String) -> String? {
        guard case .scalar(let scalar) = self.node, !self.isNull else {
            self.fail("expected \(expected), got \(Self.kind(of: self.node))")
            return nil
        }
        do {
            return try ConfigValueParser.expandEnvironment(scalar.string, self.context.environment)
        } catch {
            self.fail(error.message)
            return nil
        }
    }

    /// Any scalar as text: `name: 42` is the name "42". Only lists, mappings and nulls are rejected.
    func string() -> String? {
        self.text(expected: "a string")
    }

    /// A string that must not be empty (names, paths, file paths).
    func nonEmptyString(_ what: String = "a string") -> String? {
        guard let text = self.text(expected: what) else {
            return nil
        }
        guard !text.isEmpty else {
            self.fail("expected \(what), got an empty string")
            return nil
        }
        return text
    }

    /// `true` or `false` as YAML 1.2 writes them (any of `true`/`True`/`TRUE`). Not `yes`/`on`/`1`,
    /// and not a quoted `"true"`, which YAML makes a string; a `${VAR}` that expands to true/false is fine.
    func bool() -> Bool? {
        let expected = "true or false"
        guard case .scalar(let scalar) = self.node, let text = self.text(expected: expected) else {
            return nil
        }
        let plain = scalar.style == .plain || scalar.style == .any
        guard plain || scalar.string.contains("${") else {
            self.fail("expected \(expected) without quotes, got the string \"\(scalar.string)\"")
            return nil
        }
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default:
            self.fail("expected \(expected), got '\(text)'")
            return nil
        }
    }

    /// A duration; `positive` rejects 0 for keys where zero would mean "immediately, always".
    func duration(positive: Bool = false) -> TimeAmount? {
        guard let text = self.text(expected: ConfigValueParser.durationForm) else {
            return nil
        }
        do {
            let amount = try ConfigValueParser.duration(text)
            if positive && amount <= .zero {
                self.fail("must be greater than 0, got '\(text)'")
                return nil
            }
            return amount
        } catch {
            self.fail(error.message)
            return nil
        }
    }

    /// A percentage from 0% to 100%, as a fraction (`50%` is 0.5).
    func percentage() -> Double? {
        guard let text = self.text(expected: ConfigValueParser.percentageForm) else {
            return nil
        }
        do {
            return try ConfigValueParser.percentage(text)
        } catch {
            self.fail(error.message)
            return nil
        }
    }

    /// A size in bytes of at least `minimum`.
    func size(atLeast minimum: Int) -> Int? {
        guard let text = self.text(expected: ConfigValueParser.sizeForm) else {
            return nil
        }
        do {
            let bytes = try ConfigValueParser.size(text)
            guard bytes >= minimum else {
                self.fail("must be at least \(ConfigValueParser.formatSize(minimum)), got '\(text)'")
                return nil
            }
            return bytes
        } catch {
            self.fail(error.message)
            return nil
        }
    }

    /// A whole number of at least `minimum`.
    func integer(atLeast minimum: Int) -> Int? {
        guard let text = self.text(expected: "a whole number") else {
            return nil
        }
        do {
            let value = try ConfigValueParser.integer(text)
            guard value >= minimum else {
                self.fail("must be at least \(minimum), got \(value)")
                return nil
            }
            return value
        } catch {
            self.fail(error.message)
            return nil
        }
    }

    /// One of a fixed set of words, e.g. `always | on_demand`.
    func choice(_ allowed: [String]) -> String? {
        let list = allowed.joined(separator: ", ")
        guard let text = self.text(expected: "one of \(list)") else {
            return nil
        }
        guard allowed.contains(text) else {
            self.fail("expected one of \(list), got '\(text)'")
            return nil
        }
        return text
    }

    /// A listen address (`host:port`, `[v6]:port`, `:port`).
    func hostPort() -> HostPort? {
        guard let text = self.text(expected: "an address such as 0.0.0.0:8080") else {
            return nil
        }
        do {
            return try ConfigValueParser.hostPort(text)
        } catch {
            self.fail(error.message)
            return nil
        }
    }

    /// A regular file that must exist and be readable, resolved against the config's folder; returns the resolved path.
    ///
    /// Checked at load time so a typo fails `ssegate --check` instead of the first TLS handshake.
    func readableFile() -> String? {
        guard let written = self.nonEmptyString("a file path") else {
            return nil
        }
        let resolved = self.context.resolvePath(written)
        let shown = resolved == written ? "'\(written)'" : "'\(written)' (resolved to '\(resolved)')"
        // stat, not open: opening a FIFO blocks until a writer comes, which would hang `ssegate check`.
        var status = stat()
        guard stat(resolved, &status) == 0 else {
            self.fail("file \(shown) does not exist")
            return nil
        }
        let type = status.st_mode & S_IFMT
        guard type != S_IFDIR else {
            self.fail("\(shown) is a directory, not a file")
            return nil
        }
        guard type == S_IFREG else {
            self.fail("\(shown) is \(Self.describeFileType(type)), not a regular file")
            return nil
        }
        guard FileManager.default.isReadableFile(atPath: resolved) else {
            self.fail("file \(shown) is not readable")
            return nil
        }
        return resolved
    }

    /// "a FIFO", "a socket", …: what a path that is not a regular file is, for the message.
    static func describeFileType(_ type: mode_t) -> String {
        switch type {
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFSOCK: return "a socket"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        default: return "a special file"
        }
    }
}
