import ArgumentParser

/// `--log-format`.
enum LogFormat: String, ExpressibleByArgument {
    case text, json
}
