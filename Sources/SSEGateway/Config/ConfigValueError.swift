/// Why a config value was rejected. The message is shown after the key's path, so it does not repeat it.
struct ConfigValueError: Error, Sendable, Equatable {
    var message: String
}
