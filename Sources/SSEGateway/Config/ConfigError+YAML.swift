import Yams

extension ConfigError {
    /// Turns an error thrown by `Yams.compose` into a positioned `ConfigError`.
    ///
    /// libyaml's own text ("did not find expected key") is kept, because it is what YAML users search for;
    /// the position comes from the problem mark, and the context ("while parsing a block mapping")
    /// is added with its own position when that differs.
    init(yamlError error: any Error, file: String, yaml: String) {
        guard let yamlError = error as? YamlError else {
            self.init(file: file, line: 1, column: 1, message: "invalid YAML: \(error)")
            return
        }
        switch yamlError {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            self.init(file: file, line: mark.line, column: mark.column, message: Self.describe(problem, context, mark))
        case .reader(let problem, let offset, _, _):
            let (line, column) = Self.position(ofCharacter: offset ?? 0, in: yaml)
            self.init(file: file, line: line, column: column, message: "invalid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let key = duplicates.first ?? "?"
            // Yams marks the first occurrence; the one to delete is usually the later one, so point there.
            if let second = Self.findRepeatedKey(key, after: context.mark, in: yaml) {
                self.init(
                    file: file,
                    line: second.line,
                    column: second.column,
                    message: "duplicate key '\(key)' (first at line \(context.mark.line))"
                )
            } else {
                self.init(
                    file: file,
                    line: context.mark.line,
                    column: context.mark.column,
                    message: "duplicate key '\(key)' in this mapping"
                )
            }
        default:
            self.init(file: file, line: 1, column: 1, message: "invalid YAML: \(yamlError)")
        }
    }

    private static func describe(_ problem: String, _ context: YamlError.Context?, _ mark: Mark) -> String {
        guard let context else {
            return "invalid YAML: \(problem)"
        }
        if context.mark.line == mark.line && context.mark.column == mark.column {
            return "invalid YAML: \(context.text): \(problem)"
        }
        return "invalid YAML: \(context.text) at line \(context.mark.line), column \(context.mark.column): \(problem)"
    }

    /// 1-based line and column (in Unicode scalars, like libyaml) of the `offset`-th Character.
    private static func position(ofCharacter offset: Int, in text: String) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        for character in text.prefix(offset) {
            if character.isNewline {
                line += 1
                column = 1
            } else {
                column += character.unicodeScalars.count
            }
        }
        return (line, column)
    }

    /// Finds the next occurrence of `key` in the same block mapping: a later line with the key at the same column,
    /// preceded only by indentation (or `- ` of a list item). Gives up for flow mappings (`{a: 1, a: 2}`),
    /// where keys do not line up, and then the caller falls back to the first occurrence.
    private static func findRepeatedKey(
        _ key: String,
        after first: Mark,
        in yaml: String
    ) -> (line: Int, column: Int)? {
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).map {
            Array(($0.hasSuffix("\r") ? $0.dropLast() : $0).unicodeScalars)
        }
        func keyStarts(at line: Int) -> Bool {
            guard line - 1 < lines.count else {
                return false
            }
            let scalars = lines[line - 1]
            let column = first.column - 1
            guard column <= scalars.count, scalars[..<column].allSatisfy({ $0 == " " || $0 == "-" }) else {
                return false
            }
            let rest = String(String.UnicodeScalarView(scalars[column...]))
            return [key, "\"\(key)\"", "'\(key)'"].contains { written in
                rest.hasPrefix(written) && rest.dropFirst(written.count).drop(while: { $0 == " " }).hasPrefix(":")
            }
        }
        guard keyStarts(at: first.line) else {
            return nil
        }
        for line in (first.line + 1)...max(first.line + 1, lines.count) where keyStarts(at: line) {
            return (line, first.column)
        }
        return nil
    }
}
