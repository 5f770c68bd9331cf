/// Everything wrong with a config file; never empty.
///
/// The loader keeps going after a bad value, so one run shows as many problems as it can find.
/// The errors are sorted by position.
public struct ConfigLoadError: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(errors: [ConfigError]) {
        self.errors = errors
    }

    /// One error per line.
    public var description: String {
        self.errors.map(\.description).joined(separator: "\n")
    }
}
