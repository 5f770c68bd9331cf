import ArgumentParser
import Foundation
import Logging
import NIOCore
import SSEGateway
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the gateway.")

    @Option(name: .long, help: "The config file.")
    var config = "config/ssegate.yaml"

    @Option(
        name: .long,
        help: "Log level (trace, debug, info, notice, warning, error, critical); overrides the config."
    )
    var logLevel: String?

    @Option(name: .long, help: "Log format: text (default) or json (one object per line, for log shippers).")
    var logFormat: LogFormat = .text

    func run() async throws {
        let loaded: GatewayConfig
        do {
            loaded = try ConfigLoader.load(file: self.config)
        } catch {
            // One line on stderr (SPEC §1); `ssegate check` lists every problem.
            let first = error.errors.first.map { "\($0)" } ?? error.description
            let more =
                error.errors.count > 1
                ? " (and \(error.errors.count - 1) more: run 'ssegate check --config \(self.config)')" : ""
            throw CommandFailure.config(first + more)
        }
        if let level = self.logLevel, Logger.Level(rawValue: level.lowercased()) == nil {
            throw CommandFailure.config(
                "ssegate: --log-level must be one of trace, debug, info, notice, warning, error, critical"
            )
        }
        let logger = LogSetup.bootstrap(level: self.logLevel ?? loaded.logLevel, format: self.logFormat)
        try await GatewayRunner.run(config: loaded, configFile: self.config, logger: logger)
    }
}

/// Runs a gateway as a swift-service-lifecycle `Service` in a `ServiceGroup` that owns SIGTERM and
/// SIGINT: the first starts the graceful drain, a second one exits at once, and SIGHUP reloads
/// `configFile` (or, without one, re-reads the TLS certificates).
enum GatewayRunner {
    static func run(
        config: GatewayConfig,
        configFile: String?,
        logger: Logger,
        started: ((GatewayServer) -> Void)? = nil
    ) async throws {
        let server = GatewayServer(config: config, logger: logger)
        do {
            try await server.start()
        } catch {
            throw CommandFailure.runtime("\(error)")
        }
        started?(server)
        let reloader = Reloader(server: server, file: configFile, logger: logger)
        SignalWatch.start(
            onReload: { Task { await reloader.reload() } },
            onSecondStop: {
                logger.notice("second signal: exiting at once")
                Foundation.exit(0)
            }
        )
        // No escalation to cancellation by the group: `shutdown_timeout` may change with a reload, and the
        // service's own deadline, read from the config in force when the drain starts, bounds the exit.
        let group = ServiceGroupConfiguration(
            services: [GatewayService(server: server, logger: logger)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        try await ServiceGroup(configuration: group).run()
        logger.info("stopped")
    }
}

/// The running gateway as a `Service`: it waits for the group's graceful shutdown, then drains.
///
/// The drain spreads the clients' closes over 80% of `shutdown_timeout` and ends its wait at the timeout,
/// but what comes after (closing thousands of channels, a TLS peer that never answers `close_notify`,
/// freeing a large heap) is not bounded by it. So the process also holds a hard deadline: when
/// `shutdown_timeout` has passed since the signal, it exits, whatever is still closing.
struct GatewayService: Service {
    let server: GatewayServer
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        self.logger.info("draining (a second signal exits at once)")
        // The timeout in force now: a SIGHUP may have changed it since start-up.
        ShutdownDeadline.arm(after: self.server.config.shutdownTimeout, logger: self.logger)
        try await self.server.drainAndShutdown()
        ShutdownDeadline.disarm()
    }
}

/// Exits the process when the shutdown timeout passes. A Dispatch timer, not an event-loop task: the
/// event loops are what may be too busy closing connections to run it on time.
enum ShutdownDeadline {
    nonisolated(unsafe) private static var timer: DispatchSourceTimer?

    static func arm(after timeout: TimeAmount, logger: Logger) {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "ssegate.shutdown-deadline"))
        timer.schedule(deadline: .now() + .nanoseconds(Int(timeout.nanoseconds)))
        timer.setEventHandler {
            logger.warning("shutdown_timeout passed: exiting with connections still closing")
            // `_exit`, not `exit`: the main thread may be exiting at this moment too, and running the
            // atexit handlers twice at once is undefined.
            fflush(nil)  // every output stream
            _exit(0)
        }
        timer.resume()
        // Kept until the drain ends: a released source is cancelled.
        Self.timer = timer
    }

    /// The drain ended in time: the normal exit follows.
    static func disarm() {
        Self.timer?.cancel()
        Self.timer = nil
    }
}

/// The signals the service group does not own: SIGHUP (reload) and a second SIGTERM/SIGINT (exit at
/// once; the group handles the first). SIGPIPE stays plainly ignored, with no Dispatch source: a
/// source installs libdispatch's own handler, and every write to a socket its peer closed would then
/// raise a real signal (seen as a core spinning on SIGPIPE after thousands of clients left at once).
enum SignalWatch {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    static func start(onReload: @escaping @Sendable () -> Void, onSecondStop: @escaping @Sendable () -> Void) {
        Foundation.signal(SIGPIPE, SIG_IGN)
        Foundation.signal(SIGHUP, SIG_IGN)
        let queue = DispatchQueue(label: "ssegate.signals")
        var stops = 0
        let reload = DispatchSource.makeSignalSource(signal: SIGHUP, queue: queue)
        reload.setEventHandler { onReload() }
        reload.resume()
        Self.sources.append(reload)
        for number in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                stops += 1
                if stops >= 2 { onSecondStop() }
            }
            source.resume()
            Self.sources.append(source)
        }
    }
}

/// Applies SIGHUPs one at a time, off the event loops: parse and validate the file, then hand the new
/// config to the running gateway. An invalid file is rejected with the same FILE:LINE:COLUMN lines as
/// `ssegate check`, counted, and the config in force stays.
actor Reloader {
    let server: GatewayServer
    let file: String?
    let logger: Logger

    init(server: GatewayServer, file: String?, logger: Logger) {
        self.server = server
        self.file = file
        self.logger = logger
    }

    func reload() async {
        guard let file = self.file else {
            let errors = self.server.reloadCertificates()
            for error in errors {
                self.logger.error(
                    "reload: certificate reload failed, the old certificate stays in force",
                    metadata: ["error": "\(error)"]
                )
            }
            self.server.recordReload(applied: errors.isEmpty)
            return
        }
        let config: GatewayConfig
        do {
            config = try ConfigLoader.load(file: file)
        } catch {
            self.server.recordReload(applied: false)
            self.logger.error(
                "reload rejected, the running config stays in force",
                metadata: [
                    "errors": "\(error.errors.map { "\($0)" }.joined(separator: "; "))"
                ]
            )
            return
        }
        let (summary, errors) = await self.server.reload(config)
        self.server.recordReload(applied: errors.isEmpty)
        if errors.isEmpty {
            self.logger.notice("reload applied", metadata: ["feeds": "\(summary)"])
        } else {
            self.logger.error(
                "reload applied in part",
                metadata: ["feeds": "\(summary)", "errors": "\(errors.joined(separator: "; "))"]
            )
        }
    }
}

/// Waits for one of the given signals with Dispatch sources (the default actions are turned off).
enum SignalWaiter {
    static func wait(
        for signals: [Int32],
        ignoring: [Int32],
        onIgnored: @escaping @Sendable (Int32) -> Void
    ) async -> Int32 {
        // SIGPIPE stays plainly ignored, with no Dispatch source: a source installs libdispatch's own
        // handler, and every write to a socket its peer closed would then raise a real signal (seen as a
        // core spinning on SIGPIPE after thousands of clients left at once).
        Foundation.signal(SIGPIPE, SIG_IGN)
        return await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            let queue = DispatchQueue(label: "ssegate.signals")
            var sources: [DispatchSourceSignal] = []
            var resumed = false
            for number in signals + ignoring {
                Foundation.signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                source.setEventHandler {
                    if ignoring.contains(number) {
                        onIgnored(number)
                        return
                    }
                    guard !resumed else { Foundation.exit(0) }  // a second signal exits at once
                    resumed = true
                    continuation.resume(returning: number)
                }
                source.resume()
                sources.append(source)
            }
            // Keep the sources alive for the life of the process.
            SignalSources.keep(sources)
        }
    }
}

enum SignalSources {
    nonisolated(unsafe) private static var kept: [DispatchSourceSignal] = []
    static func keep(_ sources: [DispatchSourceSignal]) { kept += sources }
}

enum LogFormat: String, ExpressibleByArgument {
    case text, json
}

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
