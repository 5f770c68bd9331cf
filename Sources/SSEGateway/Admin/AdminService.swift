import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// The admin endpoint (`/healthz`, `/readyz`, `/metrics`, `/api/...`, the status page) as a `Service`.
///
/// It serves the gateway's read-model (`GatewayMetrics`) and never changes the gateway. In the service
/// group it comes before the gateway, so it shuts down after it: `/readyz` answers 503 for the whole
/// drain. A reload that moves the address rebinds it; without an `admin:` section it binds nothing.
public actor AdminService: Service {
    private let metrics: GatewayMetrics
    private let group: EventLoopGroup
    private let logger: Logger
    private var config: AdminConfig?
    private var channel: Channel?
    private var started = false
    private let boundAddress = NIOLockedValueBox<SocketAddress?>(nil)
    /// Shared with every admin connection, so that a reloaded token applies without a rebind.
    private let access: AdminAccess

    init(config: AdminConfig?, metrics: GatewayMetrics, group: EventLoopGroup, logger: Logger) {
        self.config = config
        self.access = AdminAccess(token: config?.token)
        self.metrics = metrics
        self.group = group
        self.logger = logger
    }

    /// The bound address (useful with port 0); nil when there is no admin endpoint.
    public nonisolated var address: SocketAddress? { self.boundAddress.withLockedValue { $0 } }

    /// Binds the configured address; a port that cannot be bound throws a `BindError`.
    public func start() async throws {
        guard !self.started else { preconditionFailure("invalid transition started on start") }
        self.started = true
        guard let config = self.config else { return }
        try await self.bind(config)
        if let address = self.address {
            self.logger.info("admin endpoint started", metadata: ["admin": "\(address.hostAndPort)"])
        }
    }

    /// Starts (unless `start()` already did), serves until the group shuts down gracefully, then closes.
    public func run() async throws {
        if !self.started { try await self.start() }
        try? await gracefulShutdown()
        await self.stop()
    }

    /// Closes the endpoint.
    public func stop() async {
        let channel = self.channel
        self.channel = nil
        self.boundAddress.withLockedValue { $0 = nil }
        try? await channel?.close()
    }

    /// Follows a reloaded `admin:` section: unchanged, nothing happens; only the token changed, the next
    /// request (on any connection) needs the new one; moved, the old endpoint closes and the new one binds;
    /// removed, it closes. Returns the error of a bind that failed.
    public func reload(_ new: AdminConfig?) async -> [String] {
        guard new != self.config else { return [] }
        let old = self.config
        self.config = new
        self.access.update(new?.token)
        if let old, let new, old.address == new.address, self.channel != nil {
            return []
        }
        await self.stop()
        guard let new else { return [] }
        do {
            try await self.bind(new)
            return []
        } catch {
            return ["\(error)"]
        }
    }

    private func bind(_ config: AdminConfig) async throws {
        do {
            let channel = try await AdminServer.bind(
                address: config.address,
                group: self.group,
                metrics: self.metrics,
                access: self.access,
                logger: self.logger
            )
            self.channel = channel
            self.boundAddress.withLockedValue { $0 = channel.localAddress }
        } catch {
            throw BindError(address: config.address, underlying: error)
        }
    }
}
