import ArgumentParser
import Logging
import SSEGateway

/// `ssegate serve`: reads the config, sets up logging and runs a `GatewayProcess` (the gateway, admin
/// and reloader services in one group). Everything after parsing lives in the library.
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
        let process = GatewayProcess(config: loaded, configFile: self.config, logger: logger)
        try await process.startOrFail()
        let server = process.server
        try await process.run(
            exitDeadline: ProcessExitDeadline(timeout: { server.config.shutdownTimeout }, logger: logger)
        )
        logger.info("stopped")
    }
}

extension GatewayProcess {
    /// `start()`, with a failure (a port in use) turned into the one-line runtime error of SPEC §1.
    func startOrFail() async throws {
        do {
            try await self.start()
        } catch {
            throw CommandFailure.runtime("\(error)")
        }
    }
}
