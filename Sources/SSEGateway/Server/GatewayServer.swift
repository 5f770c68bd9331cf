import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The running gateway: its listeners, feeds and per-loop hubs, built from one `GatewayConfig`.
///
/// An actor, like Hummingbird 2's `Server`: the set of bound listeners is changed by `start`, `reload`,
/// `drainAndShutdown` and `shutdown`, which may be called from different tasks (a SIGHUP during a
/// drain), and the actor runs them one at a time. Each of them awaits (binding, closing), so every
/// method re-reads `state` after an `await` instead of trusting what it saw before.
///
/// As a `Service` in a `ServiceGroup`, `run()` starts it (unless already started), serves until the
/// group's graceful shutdown, then drains. Tests and embedders may also call `start()` and `shutdown()`.
public actor GatewayServer: Service {
    /// Where the server is in its life. Only moves forward.
    enum State: Equatable, CustomStringConvertible {
        case idle
        case starting
        case running
        case draining
        case stopped

        var description: String {
            switch self {
            case .idle: return "idle"
            case .starting: return "starting"
            case .running: return "running"
            case .draining: return "draining"
            case .stopped: return "stopped"
            }
        }
    }

    /// A bound listener with what it was bound for.
    private struct BoundListener {
        var config: ListenerConfig
        var channel: Channel
        var tls: ListenerTLS?
        /// `config.delivery` as the listener's connections read it (updated by a reload).
        var delivery: ListenerDelivery
        /// `config.proxyProtocol` as the listener's connections read it (updated by a reload).
        var proxyProtocol: ListenerProxyProtocol
    }

    /// What readers outside the actor may see without awaiting it: the config in force and the bound
    /// addresses, republished after every change (the admin, log lines, tests with port 0).
    private struct Published {
        var config: GatewayConfig
        var listenerAddresses: [SocketAddress] = []
    }

    public nonisolated let group: EventLoopGroup
    private let ownsGroup: Bool
    private let logger: Logger
    nonisolated let context: GatewayContext
    /// The read-model the admin endpoint serves.
    nonisolated let metrics: GatewayMetrics
    private let hubs: [LoopHub]
    private let published: NIOLockedValueBox<Published>
    private var state: State = .idle
    private var listeners: [BoundListener] = []
    private var evictionSummary: RepeatedTask?

    /// `group` defaults to one event loop per core, owned (and shut down) by the server.
    public init(config: GatewayConfig, group: EventLoopGroup? = nil, logger: Logger = Logger(label: "ssegate")) {
        self.ownsGroup = group == nil
        let group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        self.group = group
        self.logger = logger
        var hubs: [LoopHub] = []
        for loop in group.makeIterator() { hubs.append(LoopHub(loop: loop)) }
        self.hubs = hubs
        let idPrefix =
            String(
                UInt64(NIODeadline.now().uptimeNanoseconds / 1_000_000) ^ UInt64.random(in: 0..<(1 << 40)),
                radix: 36
            ) + "-"
        let registry = FeedRegistry(feeds: config.feeds, group: group, idPrefix: idPrefix, logger: logger)
        self.context = GatewayContext(
            registry: registry,
            access: AccessControl(logger: logger),
            hubs: hubs,
            limits: config.limits,
            logger: logger
        )
        self.metrics = GatewayMetrics(context: self.context)
        self.published = NIOLockedValueBox(Published(config: config))
    }

    /// The configuration in force (the last one applied by `reload`).
    public nonisolated var config: GatewayConfig { self.published.withLockedValue { $0.config } }
    /// Local addresses of the bound listeners, in config order (useful with port 0).
    public nonisolated var listenerAddresses: [SocketAddress] {
        self.published.withLockedValue { $0.listenerAddresses }
    }
    public nonisolated var registry: FeedRegistry { self.context.registry }

    private func publishListeners() {
        let addresses = self.listeners.compactMap { $0.channel.localAddress }
        self.published.withLockedValue { $0.listenerAddresses = addresses }
    }

    // MARK: Service

    /// Starts (unless `start()` already did), serves until the service group shuts down gracefully,
    /// then drains (`drainAndShutdown`).
    public func run() async throws {
        if self.state == .idle { try await self.start() }
        try? await gracefulShutdown()
        guard self.state == .running else { return }
        try await self.drainAndShutdown()
    }

    // MARK: Start

    /// Binds the listeners, starts the feeds that always hold their upstream. A port that cannot be
    /// bound fails it with a `BindError` (and what was bound is closed again).
    public func start() async throws {
        guard self.state == .idle else { preconditionFailure("invalid transition \(self.state) on start") }
        self.state = .starting
        let config = self.config
        let tick = LoopHub.tickInterval(for: config.feeds)
        for hub in self.hubs { hub.start(tickInterval: tick) }
        // Before any listener: a feed with `auth:` must never be served without its authorizer.
        let authErrors = await self.context.access.install(config.feeds)
        guard authErrors.isEmpty else {
            try? await self.shutdown()
            throw AccessControlError(messages: authErrors)
        }
        do {
            try self.context.accessLog.apply(config.accessLog)
        } catch {
            try? await self.shutdown()
            throw error
        }
        do {
            for listener in config.listen {
                do {
                    self.listeners.append(try await self.bindListener(listener))
                } catch {
                    throw BindError(address: listener.address, underlying: error)
                }
            }
        } catch {
            try? await self.shutdown()
            throw error
        }
        guard self.state == .starting else {
            // A shutdown came while the listeners were being bound: it has closed them.
            return
        }
        self.state = .running
        self.publishListeners()
        self.context.registry.startPlainFeeds()
        self.startEvictionSummary()
        self.metrics.ready.store(true, ordering: .relaxed)
        self.logger.info(
            "ssegate started",
            metadata: [
                "listen": "\(self.listenerAddresses.map(\.hostAndPort).joined(separator: ", "))",
                "feeds": "\(config.feeds.count)",
            ]
        )
    }

    /// Evictions are logged as one summary line per interval in which any happened, never per client.
    private func startEvictionSummary(every interval: TimeAmount = .seconds(10)) {
        let loop = self.group.next()
        let metrics = self.metrics
        let logger = self.logger
        let access = self.context.access
        // Touched only by the repeated task, which runs on `loop`.
        let previous = NIOLoopBoundBox.makeBoxSendingValue(DeliveryStats(), eventLoop: loop)
        self.evictionSummary = loop.scheduleRepeatedAsyncTask(initialDelay: interval, delay: interval) { _ in
            metrics.snapshot(on: loop).map { snapshot in
                let total = snapshot.delivery.values.reduce(DeliveryStats(), +)
                let queue = total.evictionsMaxQueue - previous.value.evictionsMaxQueue
                let lag = total.evictionsMaxLag - previous.value.evictionsMaxLag
                previous.value = total
                access.logSummary(interval: interval)
                if queue + lag > 0 {
                    logger.notice(
                        "slow clients evicted",
                        metadata: [
                            "max_queue": "\(queue)", "max_lag": "\(lag)",
                            "interval": "\(interval.nanoseconds / 1_000_000_000)s",
                        ]
                    )
                }
            }
        }
    }

    private func bindListener(_ listener: ListenerConfig) async throws -> BoundListener {
        let context = self.context
        let tls = try listener.tls.map { try ListenerTLS(config: $0) }
        let resets = ListenerResetBudget()
        let admission = ListenerAdmission()
        let delivery = ListenerDelivery(listener.delivery)
        let proxyProtocol = ListenerProxyProtocol(listener.proxyProtocol)
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 16 * 1024, high: 64 * 1024))
            .childChannelOption(.maxMessagesPerRead, value: 4)
            // A stream reads a few hundred bytes of request and then nothing, but each channel keeps its
            // receive buffer for the next read: start it at 512 bytes instead of NIO's 2 KiB (it grows
            // after a read that fills it, for long heads and HTTP/2).
            .childChannelOption(
                .recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)
            )
            .childChannelInitializer { channel in
                do {
                    try Self.applySocketSendBuffer(channel: channel, context: context)
                    if let refusal = admission.admit(tls: tls != nil, limits: context.limits) {
                        context.countConnectionRefused(refusal)
                        if tls != nil {
                            channel.close(promise: nil)
                        } else {
                            try channel.pipeline.syncOperations.addHandler(ConnectionRefusalResponder())
                        }
                        return channel.eventLoop.makeSucceededVoidFuture()
                    }
                    context.countConnectionAdmitted()
                    try DownstreamPipeline.configure(
                        channel: channel,
                        tls: tls,
                        resets: resets,
                        context: context,
                        limits: context.limits,
                        delivery: delivery.mode,
                        proxyProtocol: proxyProtocol.enabled
                    )
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: listener.address.host, port: listener.address.port)
            .get()
        return BoundListener(
            config: listener,
            channel: channel,
            tls: tls,
            delivery: delivery,
            proxyProtocol: proxyProtocol
        )
    }

    /// `SO_SNDBUF` from the limits in force (a reload applies to the next connections): without it Linux
    /// autotunes the send buffer of a client that does not read up to `tcp_wmem`'s maximum (4 MiB), memory
    /// that `max_queue` does not see. The kernel's value (twice the one set) is kept for `/metrics`.
    private static func applySocketSendBuffer(channel: Channel, context: GatewayContext) throws {
        let bytes = context.limits.socketSendBuffer
        guard bytes > 0, let options = channel.syncOptions else { return }
        try options.setOption(.socketOption(.so_sndbuf), value: SocketOptionValue(clamping: bytes))
        let kernel = try options.getOption(.socketOption(.so_sndbuf))
        context.socketSendBufferBytes.store(Int(kernel), ordering: .relaxed)
    }

    // MARK: Reload

    /// Why a reload was not applied at all.
    public enum ReloadRefusal: Error, CustomStringConvertible {
        /// The gateway is draining or stopped: a reload must not bind listeners the drain closed.
        case notRunning(String)

        public var description: String {
            switch self {
            case .notRunning(let state): return "the gateway is \(state): reload ignored"
            }
        }
    }

    /// Applies a new configuration (SIGHUP) without dropping the clients of feeds whose definition did
    /// not change: feeds are added, removed or updated (`FeedRegistry.apply`), listeners are bound or
    /// closed, TLS certificates are re-read, limits and timers take the new values. A listener that cannot
    /// be bound is reported and the rest still applies. The admin endpoint is the `AdminServer`'s.
    /// Refused (nothing applied) unless the gateway is running.
    public func reload(
        _ new: GatewayConfig
    ) async -> (summary: FeedRegistry.ReloadSummary, errors: [String]) {
        guard self.state == .running else {
            return (FeedRegistry.ReloadSummary(), ["\(ReloadRefusal.notRunning(self.state.description))"])
        }
        var errors = await self.context.access.install(new.feeds)
        do {
            // The same destination is reopened: a SIGHUP after logrotate moved the file starts a new one.
            try self.context.accessLog.apply(new.accessLog)
        } catch {
            errors.append("\(error) (the access log in force stays)")
        }
        self.context.setLimits(new.limits)
        let summary = self.context.registry.apply(new.feeds)
        let tick = LoopHub.tickInterval(for: new.feeds)
        for hub in self.hubs { hub.start(tickInterval: tick) }

        var remaining = new.listen
        var index = 0
        while index < self.listeners.count {
            let listener = self.listeners[index]
            if let match = remaining.firstIndex(where: {
                $0.address == listener.config.address && ($0.tls == nil) == (listener.tls == nil)
            }) {
                let wanted = remaining.remove(at: match)
                if let tls = listener.tls, let wantedTLS = wanted.tls {
                    do {
                        try tls.reload(with: wantedTLS)
                    } catch {
                        errors.append("\(wantedTLS.certificate): \(error) (the old certificate stays in force)")
                    }
                }
                self.listeners[index].config = wanted
                listener.delivery.mode = wanted.delivery
                listener.proxyProtocol.enabled = wanted.proxyProtocol
                index += 1
            } else {
                self.listeners.remove(at: index)
                listener.channel.close(promise: nil)
            }
        }
        for listener in remaining {
            do {
                let bound = try await self.bindListener(listener)
                // Re-checked after the await: a drain that began meanwhile has closed the listeners.
                guard self.state == .running else {
                    try? await bound.channel.close()
                    break
                }
                self.listeners.append(bound)
            } catch {
                errors.append("\(BindError(address: listener.address, underlying: error))")
            }
        }
        self.publishListeners()
        self.published.withLockedValue { $0.config = new }
        return (summary, errors)
    }

    /// Counts a reload attempt for `/metrics` (`ssegate_config_reloads_total{result}`).
    public nonisolated func recordReload(applied: Bool) {
        if applied {
            self.metrics.reloadsApplied.add(1, ordering: .relaxed)
        } else {
            self.metrics.reloadsRejected.add(1, ordering: .relaxed)
        }
    }

    /// Reopens the access log file (SIGHUP without a config file: after logrotate moved it).
    public nonisolated func reopenAccessLog() {
        self.context.accessLog.reopen()
    }

    /// Re-reads every listener's certificate and key (SIGHUP). Connections already open keep theirs;
    /// a listener whose files fail to load keeps its old context, and the errors are returned.
    public func reloadCertificates() -> [String] {
        var errors: [String] = []
        for tls in self.listeners.compactMap(\.tls) {
            do {
                try tls.reload()
            } catch {
                errors.append("\(tls.config.certificate): \(error)")
            }
        }
        return errors
    }

    // MARK: Drain and shutdown

    /// Graceful drain (SIGTERM): `/readyz` turns 503 at once, the listeners stop accepting, new
    /// subscriptions on open connections are refused, every client gets a jittered `retry:` and is closed
    /// at a random moment within 80% of `shutdown_timeout`; then everything shuts down. Returns within
    /// `shutdown_timeout` (clients not yet closed by then are closed by the shutdown).
    public func drainAndShutdown() async throws {
        switch self.state {
        case .running:
            self.state = .draining
        case .draining, .stopped:
            return  // a drain is under way or done
        case .idle, .starting:
            preconditionFailure("invalid transition \(self.state) on drain")
        }
        let started = NIODeadline.now()
        self.metrics.ready.store(false, ordering: .relaxed)
        self.context.beginDraining()
        let closing = self.listeners
        self.listeners.removeAll()
        self.publishListeners()
        for listener in closing { try? await listener.channel.close() }
        let timeout = self.config.shutdownTimeout
        let window = TimeAmount.nanoseconds(timeout.nanoseconds * 8 / 10)
        self.logger.notice(
            "drain started",
            metadata: ["clients": "\(self.context.clientCount)", "window": "\(window.nanoseconds / 1_000_000)ms"]
        )
        let drains = self.hubs.map { $0.drain(window: window) }
        let remaining = timeout - (NIODeadline.now() - started)
        try? await Self.firstOf(drains, orTimeout: remaining, on: self.group.next()).get()
        self.logger.notice(
            "drain finished",
            metadata: [
                "clients_left": "\(self.context.clientCount)",
                "took": "\((NIODeadline.now() - started).nanoseconds / 1_000_000)ms",
            ]
        )
        try await self.shutdown()
    }

    /// Succeeds when every future has completed or when `timeout` has passed, whichever comes first.
    private static func firstOf(
        _ futures: [EventLoopFuture<Void>],
        orTimeout timeout: TimeAmount,
        on loop: EventLoop
    ) -> EventLoopFuture<Void> {
        loop.flatSubmit {
            // Both callbacks run on `loop`; `succeed` on a completed promise would trap, so the first wins.
            let promise = loop.makePromise(of: Void.self)
            let pending = NIOLoopBoundBox(true, eventLoop: loop)
            let deadline = loop.scheduleTask(in: timeout) {
                if pending.value {
                    pending.value = false
                    promise.succeed(())
                }
            }
            EventLoopFuture.andAllComplete(futures, on: loop).whenComplete { _ in
                deadline.cancel()
                if pending.value {
                    pending.value = false
                    promise.succeed(())
                }
            }
            return promise.futureResult
        }
    }

    /// Closes listeners, every upstream and every client connection. Called twice, the second does nothing.
    public func shutdown() async throws {
        guard self.state != .stopped else { return }
        self.state = .stopped
        self.evictionSummary?.cancel()
        self.evictionSummary = nil
        self.metrics.ready.store(false, ordering: .relaxed)
        let closing = self.listeners
        self.listeners.removeAll()
        self.publishListeners()
        for listener in closing { try? await listener.channel.close() }
        try? await self.context.registry.closeAll().get()
        await self.context.access.shutdown()
        for hub in self.hubs {
            try? await hub.loop.submit {
                hub.closeAllClients()
                hub.stopTimer()
            }.get()
        }
        // After the clients' last lines; what a connection still logs as it closes later is dropped.
        await self.context.accessLog.stop()
        if self.ownsGroup {
            try await self.group.shutdownGracefully()
        }
    }
}
