/// An error that ends the process with a given code and a one-line reason.
struct CommandFailure: Error {
    var code: Int32
    var message: String

    static func config(_ message: String) -> CommandFailure { CommandFailure(code: 1, message: message) }
    static func runtime(_ message: String) -> CommandFailure { CommandFailure(code: 2, message: "ssegate: " + message) }
}
