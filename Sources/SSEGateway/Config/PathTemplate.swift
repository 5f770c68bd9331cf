/// A downstream path such as `/prices` or `/rooms/{room}`: literal segments and `{name}` placeholders,
/// each placeholder matching exactly one non-empty path segment.
public struct PathTemplate: Sendable, Hashable, CustomStringConvertible {
    public enum Segment: Sendable, Hashable {
        case literal(String)
        case parameter(String)
    }

    public let segments: [Segment]
    /// The path as written in the config.
    public let description: String

    /// True when the path has at least one `{name}` placeholder.
    public var isTemplate: Bool {
        self.segments.contains { if case .parameter = $0 { return true } else { return false } }
    }

    public var parameterNames: [String] {
        self.segments.compactMap { if case .parameter(let name) = $0 { return name } else { return nil } }
    }

    /// Parses a path as written in the config; the error text names what is wrong.
    public init(parsing path: String) throws(PathTemplateError) {
        guard path.hasPrefix("/") else { throw PathTemplateError(message: "path must start with '/'") }
        var segments: [Segment] = []
        var names = Set<String>()
        for raw in path.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            if raw.hasPrefix("{") && raw.hasSuffix("}") && raw.count > 2 {
                let name = String(raw.dropFirst().dropLast())
                guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                    throw PathTemplateError(message: "bad placeholder name '{\(name)}'")
                }
                guard names.insert(name).inserted else {
                    throw PathTemplateError(message: "placeholder '{\(name)}' appears twice")
                }
                segments.append(.parameter(name))
            } else if raw.contains("{") || raw.contains("}") {
                throw PathTemplateError(message: "a placeholder must be a whole path segment, as in /rooms/{room}")
            } else if raw.contains("?") || raw.contains("#") {
                throw PathTemplateError(message: "path must not contain '?' or '#'")
            } else {
                segments.append(.literal(String(raw)))
            }
        }
        self.segments = segments
        self.description = path
    }

    /// Matches a request path (without query); returns the placeholder values, percent-decoded, or nil
    /// when it does not match.
    public func match(_ path: Substring) -> [String: String]? {
        guard path.hasPrefix("/") else { return nil }
        var values: [String: String] = [:]
        var index = 0
        for part in path.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            guard index < self.segments.count else { return nil }
            switch self.segments[index] {
            case .literal(let literal):
                guard part == literal else { return nil }
            case .parameter(let name):
                // `.` and `..` would name another upstream path once a server or proxy normalizes it.
                guard !part.isEmpty, let value = Self.percentDecode(part), value != ".", value != ".." else {
                    return nil
                }
                values[name] = value
            }
            index += 1
        }
        return index == self.segments.count ? values : nil
    }
}

extension PathTemplate {
    /// The canonical concrete path for placeholder values (one spelling per value, so that `/rooms/a%20b`
    /// and `/rooms/a b` are one feed).
    public func render(_ values: [String: String]) -> String {
        var path = ""
        for segment in self.segments {
            path += "/"
            switch segment {
            case .literal(let literal): path += literal
            case .parameter(let name): path += UpstreamURL.percentEncode(values[name] ?? "")
            }
        }
        return path.isEmpty ? "/" : path
    }

    /// Percent-decodes a path segment; nil for a malformed escape or a value that is not UTF-8.
    static func percentDecode(_ text: Substring) -> String? {
        guard text.contains("%") else { return String(text) }
        return PercentDecoding.bytes(text).flatMap { String(validating: $0, as: UTF8.self) }
    }
}
