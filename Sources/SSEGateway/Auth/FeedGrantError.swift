/// A feed pattern that does not parse.
public struct FeedGrantError: Error, Sendable, Hashable, CustomStringConvertible {
    public var pattern: String
    public var message: String

    public var description: String { "feed pattern '\(self.pattern)': \(self.message)" }
}
