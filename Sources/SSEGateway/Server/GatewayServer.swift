import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL

/// The running gateway: listeners, feeds, the per-loop hubs and the admin endpoint, built from one
/// `GatewayConfig`. `start()` binds everything (a port that cannot be bound fails it); `shutdown()`
/// closes listeners, streams and upstreams.
public final class GatewayServer: @unchecked Sendable {
    public private(set) var config: GatewayConfig
    public let group: EventLoopGroup
    private let ownsGroup: Bool
    private let logger: Logger
    let context: GatewayContext
    let metrics: GatewayMetrics
    /// A bound listener with what it was bound for.
    private struct BoundListener {
        var config: ListenerConfig
        var channel: Channel
        var tls: ListenerTLS?
    }

    private var listeners: [BoundListener] = []
    private var adminChannel: Channel?
    private var evictionSummary: RepeatedTask?
    private let hubs: [LoopHub]

    /// `group` defaults to one event loop per core, owned (and shut down) by the server.
    public init(config: GatewayConfig, group: EventLoopGroup? = nil, logger: Logger = Logger(label: "ssegate")) {
        self.config = config
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
        self.context = GatewayContext(registry: registry, hubs: hubs, limits: config.limits, logger: logger)
        self.metrics = GatewayMetrics(context: self.context)
    }

    /// Local addresses of the bound listeners, in config order (useful with port 0).
    public var listenerAddresses: [SocketAddress] { self.listeners.compactMap { $0.channel.localAddress } }
    public var adminAddress: SocketAddress? { self.adminChannel?.localAddress }
    public var registry: FeedRegistry { self.context.registry }

    /// Binds the listeners and the admin endpoint, starts the feeds that always hold their upstream.
    public func start() async throws {
        let tick = LoopHub.tickInterval(for: self.config.feeds)
        for hub in self.hubs { hub.start(tickInterval: tick) }
        do {
            for listener in self.config.listen {
                do {
                    self.listeners.append(try await self.bindListener(listener))
                } catch {
                    throw BindError(address: listener.address, underlying: error)
                }
            }
            if let admin = self.config.admin {
                do {
                    self.adminChannel = try await AdminServer.bind(
                        address: admin.address,
                        group: self.group,
                        metrics: self.metrics,
                        logger: self.logger
                    )
                } catch {
                    throw BindError(address: admin.address, underlying: error)
                }
            }
        } catch {
            try? await self.shutdown()
            throw error
        }
        self.context.registry.startPlainFeeds()
        self.startEvictionSummary()
        self.metrics.ready.store(true, ordering: .relaxed)
        self.logger.info(
            "ssegate started",
            metadata: [
                "listen": "\(self.listenerAddresses.map(Self.describe).joined(separator: ", "))",
                "admin": "\(self.adminAddress.map(Self.describe) ?? "off")",
                "feeds": "\(self.config.feeds.count)",
            ]
        )
    }

    /// Evictions are logged as one summary line per interval in which any happened, never per client.
    private func startEvictionSummary(every interval: TimeAmount = .seconds(10)) {
        let loop = self.group.next()
        var previous = DeliveryStats()
        self.evictionSummary = loop.scheduleRepeatedAsyncTask(initialDelay: interval, delay: interval) {
            [weak self] _ in
            guard let self else { return loop.makeSucceededVoidFuture() }
            return self.metrics.snapshot(on: loop).map { snapshot in
                let total = snapshot.delivery.values.reduce(DeliveryStats(), +)
                let queue = total.evictionsMaxQueue - previous.evictionsMaxQueue
                let lag = total.evictionsMaxLag - previous.evictionsMaxLag
                previous = total
                if queue + lag > 0 {
                    self.logger.notice(
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

    /// `127.0.0.1:8080` or `[::1]:8080`, for logs.
    static func describe(_ address: SocketAddress) -> String {
        let host = address.ipAddress ?? "?"
        return host.contains(":") ? "[\(host)]:\(address.port ?? 0)" : "\(host):\(address.port ?? 0)"
    }

    private func bindListener(_ listener: ListenerConfig) async throws -> BoundListener {
        let context = self.context
        let tls = try listener.tls.map { try ListenerTLS(config: $0) }
        let resets = ListenerResetBudget()
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
                    try DownstreamPipeline.configure(
                        channel: channel,
                        tls: tls,
                        resets: resets,
                        context: context,
                        limits: context.limits
                    )
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: listener.address.host, port: listener.address.port)
            .get()
        return BoundListener(config: listener, channel: channel, tls: tls)
    }

    /// Applies a new configuration (SIGHUP) without dropping the clients of feeds whose definition did
    /// not change: feeds are added, removed or updated (`FeedRegistry.apply`), listeners are bound or
    /// closed, TLS certificates are re-read, limits and timers take the new values. A listener that cannot
    /// be bound is reported and the rest still applies. Call from one task at a time.
    public func reload(_ new: GatewayConfig) async -> (summary: FeedRegistry.ReloadSummary, errors: [String]) {
        var errors: [String] = []
        self.context.setLimits(new.limits)
        let summary = self.context.registry.apply(new.feeds)
        let tick = LoopHub.tickInterval(for: new.feeds)
        for hub in self.hubs { hub.start(tickInterval: tick) }

        var kept: [BoundListener] = []
        var remaining = new.listen
        for var listener in self.listeners {
            if let index = remaining.firstIndex(where: {
                $0.address == listener.config.address && ($0.tls == nil) == (listener.tls == nil)
            }) {
                let wanted = remaining.remove(at: index)
                if let tls = listener.tls, let wantedTLS = wanted.tls {
                    do {
                        try tls.reload(with: wantedTLS)
                    } catch {
                        errors.append("\(wantedTLS.certificate): \(error) (the old certificate stays in force)")
                    }
                }
                listener.config = wanted
                kept.append(listener)
            } else {
                try? await listener.channel.close()
            }
        }
        for listener in remaining {
            do {
                kept.append(try await self.bindListener(listener))
            } catch {
                errors.append("\(BindError(address: listener.address, underlying: error))")
            }
        }
        self.listeners = kept

        if new.admin != self.config.admin {
            if let admin = self.adminChannel {
                try? await admin.close()
                self.adminChannel = nil
            }
            if let admin = new.admin {
                do {
                    self.adminChannel = try await AdminServer.bind(
                        address: admin.address,
                        group: self.group,
                        metrics: self.metrics,
                        logger: self.logger
                    )
                } catch {
                    errors.append("\(BindError(address: admin.address, underlying: error))")
                }
            }
        }
        self.config = new
        return (summary, errors)
    }

    /// Counts a reload attempt for `/metrics` (`ssegate_config_reloads_total{result}`).
    public func recordReload(applied: Bool) {
        if applied {
            self.metrics.reloadsApplied.add(1, ordering: .relaxed)
        } else {
            self.metrics.reloadsRejected.add(1, ordering: .relaxed)
        }
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

    /// Graceful drain (SIGTERM): `/readyz` turns 503 at once, the listeners stop accepting, new
    /// subscriptions on open connections are refused, every client gets a jittered `retry:` and is closed
    /// at a random moment within 80% of `shutdown_timeout`; then everything shuts down. Returns within
    /// `shutdown_timeout` (clients not yet closed by then are closed by the shutdown).
    public func drainAndShutdown() async throws {
        let started = NIODeadline.now()
        self.metrics.ready.store(false, ordering: .relaxed)
        self.context.beginDraining()
        for listener in self.listeners { try? await listener.channel.close() }
        self.listeners.removeAll()
        let timeout = self.config.shutdownTimeout
        let window = TimeAmount.nanoseconds(timeout.nanoseconds * 8 / 10)
        let clients = self.context.clientCount
        self.logger.notice(
            "drain started",
            metadata: ["clients": "\(clients)", "window": "\(window.nanoseconds / 1_000_000)ms"]
        )
        // Whichever comes first: every loop drained, or the shutdown timeout.
        let loop = self.group.next()
        let drains = self.hubs.map { $0.drain(window: window) }
        let remaining = timeout - (NIODeadline.now() - started)
        try? await loop.flatSubmit { () -> EventLoopFuture<Void> in
            // Both callbacks run on `loop`, so a plain flag decides which completes the promise.
            let promise = loop.makePromise(of: Void.self)
            var pending = true
            let deadline = loop.scheduleTask(in: remaining) {
                if pending {
                    pending = false
                    promise.succeed(())
                }
            }
            EventLoopFuture.andAllComplete(drains, on: loop).whenComplete { _ in
                deadline.cancel()
                if pending {
                    pending = false
                    promise.succeed(())
                }
            }
            return promise.futureResult
        }.get()
        self.logger.notice(
            "drain finished",
            metadata: [
                "clients_left": "\(self.context.clientCount)",
                "took": "\((NIODeadline.now() - started).nanoseconds / 1_000_000)ms",
            ]
        )
        try await self.shutdown()
    }

    /// Closes listeners, the admin endpoint, every upstream and every client connection.
    public func shutdown() async throws {
        self.evictionSummary?.cancel()
        self.metrics.ready.store(false, ordering: .relaxed)
        for listener in self.listeners { try? await listener.channel.close() }
        self.listeners.removeAll()
        if let admin = self.adminChannel { try? await admin.close() }
        self.adminChannel = nil
        try? await self.context.registry.closeAll().get()
        for hub in self.hubs {
            try? await hub.loop.submit {
                hub.closeAllClients()
                hub.stopTimer()
            }.get()
        }
        if self.ownsGroup {
            try await self.group.shutdownGracefully()
        }
    }
}

/// A listener or the admin endpoint could not be bound.
public struct BindError: Error, CustomStringConvertible {
    public var address: HostPort
    public var underlying: Error

    public var description: String {
        if let io = self.underlying as? IOError {
            return "cannot listen on \(self.address): \(String(cString: strerror(io.errnoCode)))"
        }
        return "cannot listen on \(self.address): \(self.underlying)"
    }
}

/// Builds the per-connection pipelines of a downstream listener: TLS with ALPN (h2, http/1.1) when the
/// listener has `tls`, else HTTP/1.1 and h2c by prior knowledge on the same port.
enum DownstreamPipeline {
    /// `resets`: the listener's budget of premature HTTP/2 stream resets, shared by its connections.
    static func configure(
        channel: Channel,
        tls: ListenerTLS?,
        resets: ListenerResetBudget,
        context: GatewayContext,
        limits: LimitsConfig
    ) throws {
        let sync = channel.pipeline.syncOperations
        if let tls {
            try sync.addHandler(NIOSSLServerHandler(context: tls.context))
            // The handshake and ALPN must finish within the header timeout too.
            let deadline = channel.eventLoop.scheduleTask(in: limits.headerTimeout) { channel.close(promise: nil) }
            channel.closeFuture.whenComplete { _ in deadline.cancel() }
            _ = channel.configureHTTP2SecureUpgrade(
                h2ChannelConfigurator: { channel in
                    deadline.cancel()
                    return channel.eventLoop.makeCompletedFuture {
                        try Self.configureHTTP2(channel: channel, resets: resets, context: context, limits: limits)
                    }
                },
                http1ChannelConfigurator: { channel in
                    deadline.cancel()
                    return channel.eventLoop.makeCompletedFuture {
                        try Self.configureHTTP1(channel: channel, context: context, limits: limits)
                    }
                }
            )
        } else {
            try sync.addHandler(
                ProtocolDetector(
                    timeout: limits.headerTimeout,
                    http1: { try Self.configureHTTP1(channel: $0, context: context, limits: limits) },
                    http2: { try Self.configureHTTP2(channel: $0, resets: resets, context: context, limits: limits) }
                )
            )
        }
    }

    static func configureHTTP1(channel: Channel, context: GatewayContext, limits: LimitsConfig) throws {
        let limiter = HeadSizeLimiter(limit: limits.maxHeaderBytes)
        let sync = channel.pipeline.syncOperations
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes))
        try sync.addHandler(limiter)
        try sync.addHandler(decoder)
        try sync.addHandler(
            HTTP1StreamHandler(gateway: context, limiter: limiter, requestHandlers: [limiter, decoder])
        )
    }

    /// HTTP/2 with SwiftNIO's server defences on (reset-flood, glitch and control-frame limits, header
    /// validation), a bounded number of concurrent streams per connection, and `HTTP2FloodGuard` for
    /// what SwiftNIO does not count (WINDOW_UPDATE floods, resets spread over many connections).
    static func configureHTTP2(
        channel: Channel,
        resets: ListenerResetBudget,
        context: GatewayContext,
        limits: LimitsConfig
    ) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: limits.maxStreamsPerConnection),
            HTTP2Setting(parameter: .maxHeaderListSize, value: limits.maxHeaderBytes),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ]
        connection.headerBlockValidation = .enabled
        connection.contentLengthValidation = .enabled
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.outboundBufferSizeHighWatermark = 64 * 1024
        stream.outboundBufferSizeLowWatermark = 16 * 1024
        // Closes a connection without a stream (none yet, or none left) after the header timeout, and a
        // connection on which the HTTP/2 handler hit a connection error (it sent GOAWAY).
        let guardHandler = HTTP2ConnectionGuard(timeout: limits.headerTimeout)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(
            HTTP2FloodGuard(listener: resets, prematureResetsPerSecond: limits.prematureResetsPerSecond) { reason in
                context.countFloodClose(reason)
            }
        )
        // Below the HTTP/2 handler: one write per connection per batch, not one per stream.
        try sync.addHandler(HTTP2FlushCoalescer(deferred: context.hub(for: channel.eventLoop).deferredFlushes))
        _ = try sync.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: connection,
            streamConfiguration: stream,
            streamDelegate: guardHandler.streamDelegate(on: channel.eventLoop)
        ) { streamChannel in
            streamChannel.eventLoop.makeCompletedFuture {
                try streamChannel.pipeline.syncOperations.addHandler(HTTP2StreamHandler(gateway: context))
            }
        }
        try sync.addHandler(guardHandler)
    }
}
