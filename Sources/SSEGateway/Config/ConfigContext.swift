import Foundation
import Yams

/// State shared by one load: where the file is, the environment, and the errors found so far.
///
/// A class because every `ConfigMapping` and `ConfigValue` of the tree reports into the same list,
/// and the list must outlive them all until `finish()`.
///
/// Every mapping holds its context and the context holds every mapping (``register(_:)``): a cycle that
/// `finish()` breaks by letting go of the mappings. Before it did, each load (every SIGHUP reload) kept its
/// whole tree forever: the YAML nodes, every mapping, and a copy of the process environment, ~17 KB of RSS
/// per reload of a one-feed config.
final class ConfigContext {
    /// Contexts alive now: back at its baseline once the loads are over (`ConfigReloadLeakTests`).
    /// One relaxed atomic add per load.
    static let live = LiveCounter()

    /// The file as the caller named it; printed in every error.
    let file: String
    /// Folder that relative file paths in the config (TLS certificates and keys) resolve against.
    let baseDirectory: String
    let environment: [String: String]
    /// Whether the TLS files the config names can be used; supplied by the caller (see `TLSFileCheck`).
    let tlsCheck: TLSFileCheck

    private var errors: [ConfigError] = []
    /// The key path of each value or mapping an error was reported at, for ``hasErrors(under:)``.
    private var failedPaths: [String] = []
    /// Every mapping read, so that `finish()` can report the keys nobody asked for.
    private var mappings: [ConfigMapping] = []

    init(file: String, baseDirectory: String, environment: [String: String], tlsCheck: TLSFileCheck) {
        self.file = file
        self.baseDirectory = baseDirectory
        self.environment = environment
        self.tlsCheck = tlsCheck
        Self.live.increment()
    }

    deinit {
        Self.live.decrement()
    }

    /// Records a problem at a node's position. Nodes from `Yams.compose` always carry a mark;
    /// the 1:1 fallback only keeps an error from being lost if one ever does not.
    /// `path` is the key path of the value at fault, when there is one (``ConfigValue/fail(_:)`` passes it).
    func report(_ message: String, at mark: Mark?, path: String? = nil) {
        if let path {
            self.failedPaths.append(path)
        }
        self.errors.append(
            ConfigError(file: self.file, line: mark?.line ?? 1, column: mark?.column ?? 1, message: message)
        )
    }

    /// True when an error was reported at `prefix` or inside it (`defaults.auth.jwt.keys` covers
    /// `defaults.auth.jwt.keys[0].file`): a check that would only repeat that error in other words is skipped.
    func hasErrors(under prefix: String) -> Bool {
        self.failedPaths.contains { path in
            guard path.hasPrefix(prefix) else { return false }
            let rest = path.dropFirst(prefix.count)
            return rest.isEmpty || rest.hasPrefix(".") || rest.hasPrefix("[")
        }
    }

    func register(_ mapping: ConfigMapping) {
        self.mappings.append(mapping)
    }

    /// Reports unknown keys of every mapping read, then returns all errors sorted by position.
    ///
    /// Unknown keys are checked last because a key counts as known once any reader asked for it,
    /// and a feed's `upstream` mapping is asked by two readers (the feed for `url`, the settings for the rest).
    /// Content reached through a YAML alias is read once per use, so an error in it appears once per user,
    /// each with that user's key path: all at the anchor's position.
    /// Called once, at the end of every load: it also breaks the context–mapping cycle (see the type's comment).
    func finish() -> [ConfigError] {
        let mappings = self.mappings
        self.mappings = []
        for mapping in mappings {
            mapping.reportUnknownKeys()
        }
        // Sorting is stable, so errors at one position keep the order they were found in.
        return self.errors.enumerated().sorted { lhs, rhs in
            (lhs.element.line, lhs.element.column, lhs.offset) < (rhs.element.line, rhs.element.column, rhs.offset)
        }.map(\.element)
    }

    /// Resolves a path written in the config against the config file's folder, dropping `.` and `..`
    /// segments lexically (no symlinks resolved, so the stored path stays recognisable in logs).
    func resolvePath(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : self.baseDirectory + "/" + path
        var parts: [Substring] = []
        for part in joined.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".":
                continue
            case "..":
                if !parts.isEmpty && parts.last != ".." {
                    parts.removeLast()
                } else if !joined.hasPrefix("/") {
                    parts.append(part)
                }
            default:
                parts.append(part)
            }
        }
        let body = parts.joined(separator: "/")
        if joined.hasPrefix("/") {
            return "/" + body
        }
        return body.isEmpty ? "." : body
    }
}
