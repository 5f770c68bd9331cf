import Logging
import ServiceLifecycle
import UnixSignals

/// Applies SIGHUPs one at a time, off the event loops: parse and validate the file, then hand the new
/// config to the running gateway and admin endpoint. An invalid file is rejected with the same
/// FILE:LINE:COLUMN lines as `ssegate check`, counted, and the config in force stays. Without a file,
/// a SIGHUP re-reads the listeners' TLS certificates.
///
/// In the service group it comes after the gateway, so it stops first: once a drain begins, a SIGHUP is
/// ignored (and `GatewayServer.reload` refuses one that reaches it another way).
public actor ConfigReloader: Service {
    let server: GatewayServer
    let admin: AdminService
    let file: String?
    let logger: Logger

    public init(server: GatewayServer, admin: AdminService, file: String?, logger: Logger) {
        self.server = server
        self.admin = admin
        self.file = file
        self.logger = logger
    }

    /// Reloads on every SIGHUP until the group shuts down gracefully.
    public func run() async {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        for await _ in hangups.cancelOnGracefulShutdown() {
            await self.reload()
        }
    }

    public func reload() async {
        guard let file = self.file else {
            self.server.reopenAccessLog()
            let errors = await self.server.reloadCertificates()
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
            // logrotate's SIGHUP still reopens the access log when the new file is rejected.
            self.server.reopenAccessLog()
            self.server.recordReload(applied: false)
            self.logger.error(
                "reload rejected, the running config stays in force",
                metadata: [
                    "errors": "\(error.errors.map { "\($0)" }.joined(separator: "; "))"
                ]
            )
            return
        }
        let (summary, serverErrors) = await self.server.reload(config)
        let errors = serverErrors + (await self.admin.reload(config.admin))
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
