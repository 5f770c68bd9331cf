import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// A whole gateway process: the gateway server, its admin endpoint and the reloader, run as services of
/// one `ServiceGroup`. SIGTERM or SIGINT starts the group's graceful shutdown (a second one exits at
/// once); the reloader takes SIGHUP. The stop signals are trapped from `start()` on, before anything is
/// bound, so one that arrives while the gateway starts is not lost: it shuts the group down as soon as it
/// runs.
///
/// The first stop signal arms the exit deadline (when given), then the group shuts services down in
/// reverse order, one after the other: the reloader stops (no reload can race the drain), the gateway
/// drains, and the admin endpoint — still answering `/readyz` 503 throughout — closes last.
public final class GatewayProcess: Sendable {
    public let server: GatewayServer
    public let admin: AdminService
    public let reloader: ConfigReloader
    let logger: Logger
    /// The event loops of every service; shut down by `run` after the last service ended, when owned.
    let group: EventLoopGroup
    let ownsGroup: Bool
    /// SIGTERM and SIGINT, trapped by `start()` and consumed by `run()`.
    private let stopSignals = NIOLockedValueBox<UnixSignalsSequence?>(nil)

    /// `configFile`: what SIGHUP re-reads; without one, SIGHUP re-reads the TLS certificates. `group`
    /// defaults to one event loop per core, owned by the process.
    public init(config: GatewayConfig, configFile: String?, group: EventLoopGroup? = nil, logger: Logger) {
        self.ownsGroup = group == nil
        let group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        self.group = group
        self.server = GatewayServer(config: config, group: group, logger: logger)
        self.admin = AdminService(config: config.admin, server: self.server, logger: logger)
        self.reloader = ConfigReloader(
            server: self.server,
            admin: self.admin,
            file: configFile,
            config: config,
            logger: logger
        )
        self.logger = logger
    }

    /// Binds the listeners and the admin endpoint before anything runs, so that a port in use is one
    /// clear error (a `BindError`) and nothing stays bound.
    public func start() async throws {
        // Until the reloader's signal sequence is set up, a SIGHUP must not end the process; SIGPIPE stays
        // plainly ignored, with no Dispatch source (one would raise a real signal for every write to a
        // socket whose peer left).
        signal(SIGHUP, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        let stops = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        self.stopSignals.withLockedValue { $0 = stops }
        try await self.server.start()
        do {
            try await self.admin.start()
        } catch {
            try? await self.server.shutdown()
            throw error
        }
    }

    /// Runs the services until SIGTERM or SIGINT has drained the gateway. `exitDeadline`, when given, is
    /// armed by the first stop signal and ends the process if the shutdown outlasts `shutdown_timeout`.
    public func run(exitDeadline: ProcessExitDeadline? = nil) async throws {
        let services: [any Service] = [self.admin, self.server, self.reloader]
        // No escalation to cancellation by the group: `shutdown_timeout` may change with a reload, and the
        // exit deadline, read from the config in force when the drain starts, bounds the exit. The stop
        // signals are ours (trapped since `start`), not the group's: see the type's comment.
        let serviceGroup = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services, logger: self.logger)
        )
        let logger = self.logger
        let trapped = self.stopSignals.withLockedValue { $0 }
        let stops = if let trapped { trapped } else { await UnixSignalsSequence(trapping: .sigterm, .sigint) }
        let watcher = Task {
            var count = 0
            for await _ in stops {
                count += 1
                if count == 1 {
                    exitDeadline?.arm()
                    logger.info("draining (a second signal exits at once)")
                    await serviceGroup.triggerGracefulShutdown()
                } else {
                    logger.notice("second signal: exiting at once")
                    fflush(nil)
                    exit(0)
                }
            }
        }
        defer { watcher.cancel() }
        try await serviceGroup.run()
        if self.ownsGroup { try await self.group.shutdownGracefully() }
        exitDeadline?.disarm()
    }
}
