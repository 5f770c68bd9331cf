import ArgumentParser
import Logging

/// `--log-format`.
enum LogFormat: String, ExpressibleByArgument {
    case text, json
}

/// Bootstraps swift-log once per process: text lines on stderr, or one JSON object per line.
enum LogSetup {
    static func bootstrap(level: String, format: LogFormat = .text) -> Logger {
        let parsed = Logger.Level(rawValue: level.lowercased()) ?? .info
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = parsed
                return handler
            case .json:
                var handler = JSONLogHandler(label: label)
                handler.logLevel = parsed
                return handler
            }
        }
        var logger = Logger(label: "ssegate")
        logger.logLevel = parsed
        return logger
    }
}
