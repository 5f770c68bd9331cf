/// One problem in a config file, at its position.
///
/// `description` is `FILE:LINE:COLUMN: message`, the form editors and terminals turn into a link.
/// Lines and columns are 1-based; columns count Unicode scalars, as libyaml does.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file as the caller named it (not made absolute), so the message matches what the user typed.
    public var file: String
    public var line: Int
    public var column: Int
    /// What is wrong, usually starting with the key's path, e.g. `defaults.retry: expected a duration …`.
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        "\(self.file):\(self.line):\(self.column): \(self.message)"
    }
}
