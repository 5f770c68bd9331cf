import Logging
import ServiceLifecycle
import UnixSignals

/// Applies SIGHUPs one at a time, off the event loops: parse and validate the file, then hand the new
/// config to the running gateway and admin endpoint. An invalid file is rejected with the same
/// FILE:LINE:COLUMN lines as `ssegate check`, counted, and the config in force stays. Without a file,
/// a SIGHUP re-reads the listeners' TLS certificates. With `reload_on_change: true` it also reads the file
/// every `reload_check_interval` and reloads when the text changed (see `ConfigFileWatch`).
///
/// In the service group it comes after the gateway, so it stops first: once a drain begins, a SIGHUP is
/// ignored (and `GatewayServer.reload` refuses one that reaches it another way).
public actor ConfigReloader: Service {
    let server: GatewayServer
    let admin: AdminService
    let file: String?
    let logger: Logger
    private var watch: ConfigFileWatch

    /// `config`: the config in force at start, read from `file`; it says whether to watch the file.
    public init(
        server: GatewayServer,
        admin: AdminService,
        file: String?,
        config: GatewayConfig = GatewayConfig(),
        logger: Logger
    ) {
        self.server = server
        self.admin = admin
        self.file = file
        self.logger = logger
        self.watch = ConfigFileWatch(config: config, text: file.flatMap { try? ConfigLoader.readFile($0) })
    }

    /// Reloads on every SIGHUP, and on every change of the file when watched, until the group shuts down
    /// gracefully.
    public func run() async {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await withDiscardingTaskGroup { group in
            group.addTask { await self.watchFile() }
            for await _ in hangups.cancelOnGracefulShutdown() {
                await self.reload()
            }
            group.cancelAll()
        }
    }

    /// Reads the file every `reload_check_interval` (of the config in force, so a reload can turn watching
    /// on or off) and reloads when its text changed.
    private func watchFile() async {
        guard let file = self.file else { return }
        while true {
            let interval = self.watch.interval
            do {
                try await cancelWhenGracefulShutdown {
                    try await Task.sleep(nanoseconds: UInt64(max(interval.nanoseconds, 1_000_000)))
                }
            } catch {
                return
            }
            guard self.watch.enabled else { continue }
            if self.watch.shouldReload(after: try? ConfigLoader.readFile(file)) {
                self.logger.info("config file changed, reloading", metadata: ["file": "\(file)"])
                await self.reload()
            }
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
        // What this reload reads is what the next poll compares with, applied or rejected.
        self.watch.noteRead(try? ConfigLoader.readFile(file))
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
        self.watch.adopt(config)
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
