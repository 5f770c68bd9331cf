import Logging
import NIOConcurrencyHelpers

/// A swift-log handler that keeps every message (with its `upstream` metadata), for tests that count
/// log lines. Made per logger with `Logger(label:factory:)`, so no global bootstrap is needed.
final class LogRecorder: Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let lines = NIOLockedValueBox<[Line]>([])

    var recorded: [Line] { self.lines.withLockedValue { $0 } }

    func logger(level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: "test") { _ in Handler(recorder: self) }
        logger.logLevel = level
        return logger
    }

    fileprivate func append(_ line: Line) {
        self.lines.withLockedValue { $0.append(line) }
    }

    private struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = self.metadata.merging(event.metadata ?? [:]) { $1 }
            self.recorder.append(
                Line(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" })
            )
        }
    }
}
