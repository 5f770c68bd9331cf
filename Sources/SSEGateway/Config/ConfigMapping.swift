import Yams

/// Reads one YAML mapping of the config and remembers which keys were asked for,
/// so that every key nobody asked for is reported as unknown (with a "did you mean" suggestion).
///
/// The set of known keys is whatever the loader asks for, so there is no second list of keys to keep
/// in sync with the code that reads them.
final class ConfigMapping {
    private struct Entry {
        var key: String
        var keyMark: Mark?
        var value: Node
    }

    /// Dotted path shown in messages: `defaults.upstream`, `feeds[0]`; empty for the top level.
    let path: String
    let mark: Mark?
    let context: ConfigContext

    private var entries: [Entry] = []
    private var known: [String] = []
    /// Extra text for keys that are valid elsewhere, e.g. `url` in `defaults.upstream`.
    private var hints: [String: String] = [:]
    /// Children are cached so that a mapping read twice (a feed's `upstream`) is one reader, one set of known keys.
    private var children: [String: ConfigMapping?] = [:]
    private var acceptsAnyKey = false

    init(_ mapping: Node.Mapping, path: String, context: ConfigContext) {
        self.path = path
        self.mark = mapping.mark
        self.context = context
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                context.report(
                    "\(self.displayName): a key must be a plain string, not \(ConfigValue.kind(of: keyNode))",
                    at: keyNode.mark
                )
                continue
            }
            if scalar.string == "<<" && scalar.style == .plain {
                // `<<` is only a key to the composer; the merge itself would have to be done here. Not worth it
                // for a config whose `defaults:` already share settings between feeds.
                context.report(
                    "\(self.displayName): merge keys ('<<') are not supported; use 'defaults:' to share feed settings",
                    at: keyNode.mark
                )
                continue
            }
            self.entries.append(Entry(key: scalar.string, keyMark: scalar.mark, value: value))
        }
        context.register(self)
    }

    /// `defaults`, `feeds[0]`, or `top level`: names the mapping itself at the start of a message.
    var displayName: String {
        self.path.isEmpty ? "top level" : self.path
    }

    /// The path of one of this mapping's keys, e.g. `defaults.retry`.
    func path(of key: String) -> String {
        self.path.isEmpty ? key : "\(self.path).\(key)"
    }

    /// The value written for `key`, or nil when the key is absent. Asking makes the key known.
    func value(_ key: String) -> ConfigValue? {
        if !self.known.contains(key) {
            self.known.append(key)
        }
        guard let entry = self.entries.first(where: { $0.key == key }) else {
            return nil
        }
        return ConfigValue(entry.value, path: self.path(of: key), context: self.context)
    }

    /// The value of a required key; reports `missing required key` at this mapping when absent.
    func required(_ key: String) -> ConfigValue? {
        guard let value = self.value(key) else {
            self.context.report(
                "\(self.displayName): missing required key '\(key)'",
                at: self.mark,
                path: self.path(of: key)
            )
            return nil
        }
        return value
    }

    /// The mapping written for `key`: nil when absent or null (both mean "keep what you have"),
    /// and nil with an error when it is not a mapping. Read once, then cached.
    func child(_ key: String) -> ConfigMapping? {
        if let cached = self.children[key] {
            return cached
        }
        var result: ConfigMapping?
        if let value = self.value(key), !value.isNull {
            result = value.mapping()
        }
        self.children[key] = result
        return result
    }

    /// All entries, in the order written, for mappings whose keys are data (header names).
    func allEntries() -> [(key: String, keyMark: Mark?, value: ConfigValue)] {
        self.acceptsAnyKey = true
        return self.entries.map { entry in
            (entry.key, entry.keyMark, ConfigValue(entry.value, path: self.path(of: entry.key), context: self.context))
        }
    }

    /// Explains a key that is valid somewhere else, instead of suggesting a near miss.
    func hint(_ key: String, _ text: String) {
        self.hints[key] = text
    }

    /// Reports every key that nobody asked for. Called once by `ConfigContext.finish()`.
    func reportUnknownKeys() {
        guard !self.acceptsAnyKey else {
            return
        }
        for entry in self.entries where !self.known.contains(entry.key) {
            var message = "unknown key '\(entry.key)' " + (self.path.isEmpty ? "at the top level" : "in \(self.path)")
            if let hint = self.hints[entry.key] {
                message += " (\(hint))"
            } else if let suggestion = ConfigValueParser.suggestion(for: entry.key, among: self.known) {
                message += " (did you mean '\(suggestion)'?)"
            }
            self.context.report(message, at: entry.keyMark)
        }
    }
}
