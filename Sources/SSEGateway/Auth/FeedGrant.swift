/// One entry of a token's feeds claim (or of `default_allow`): a path pattern a token may subscribe to.
///
/// - `/prices` allows exactly that path.
/// - `/rooms/*` allows `/rooms/` followed by any one non-empty segment, whatever feed serves it.
/// - `/rooms/{room}` allows any value of a template feed's `{room}` placeholder: the request's path must
///   be an instance of a template whose segment at that position is the placeholder `{room}`, so it does not
///   open a separately configured static feed such as `/rooms/lobby`.
///
/// Matching is pure and segment-wise: `*` never spans a `/`, and a pattern never matches a path with a
/// different number of segments.
public struct FeedGrant: Sendable, Hashable, CustomStringConvertible {
    /// A pattern segment.
    public enum Segment: Sendable, Hashable {
        case literal(String)
        /// `*`: any one non-empty segment.
        case wildcard
        /// `{name}`: any value of the feed template's placeholder of the same name at this position.
        case placeholder(String)
    }

    public let segments: [Segment]
    /// The pattern as written in the token or the config.
    public let description: String

    /// Parses a pattern; the error text names what is wrong.
    public init(parsing pattern: String) throws(FeedGrantError) {
        guard pattern.hasPrefix("/") else { throw FeedGrantError(pattern: pattern, message: "must start with '/'") }
        var segments: [Segment] = []
        for raw in pattern.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            if raw == "*" {
                segments.append(.wildcard)
            } else if raw.hasPrefix("{") && raw.hasSuffix("}") && raw.count > 2 {
                let name = raw.dropFirst().dropLast()
                guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                    throw FeedGrantError(pattern: pattern, message: "bad placeholder name '\(raw)'")
                }
                segments.append(.placeholder(String(name)))
            } else if raw.contains("*") || raw.contains("{") || raw.contains("}") {
                throw FeedGrantError(pattern: pattern, message: "'*' and '{name}' must be whole segments")
            } else if raw.contains("?") || raw.contains("#") {
                throw FeedGrantError(pattern: pattern, message: "must not contain '?' or '#'")
            } else {
                segments.append(.literal(String(raw)))
            }
        }
        self.segments = segments
        self.description = pattern
    }

    /// True when this grant allows the concrete request `path` (no query), served by a feed whose configured
    /// path is `feedTemplate` (nil for a static feed, which no `{name}` segment matches).
    public func allows(path: String, feedTemplate: PathTemplate? = nil) -> Bool {
        guard path.hasPrefix("/") else { return false }
        let parts = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == self.segments.count else { return false }
        for (index, (segment, part)) in zip(self.segments, parts).enumerated() {
            switch segment {
            case .literal(let literal):
                guard part == literal else { return false }
            case .wildcard:
                guard !part.isEmpty else { return false }
            case .placeholder(let name):
                guard !part.isEmpty, let template = feedTemplate, template.segments.count == parts.count,
                    template.segments[index] == .parameter(name)
                else { return false }
            }
        }
        return true
    }
}
