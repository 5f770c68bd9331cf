import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// What every connection handler needs from the gateway: the feeds, the hub of each event loop, and the
/// process-wide client limit. Shared by all loops; its mutable parts are a lock (registry lookups, once
/// per request) and an atomic (the client count, once per connect/disconnect).
final class GatewayContext: Sendable {
    let registry: FeedRegistry
    /// The authorizers of feeds with `auth:`, consulted once per stream request.
    let access: AccessControl
    private let hubs: [ObjectIdentifier: LoopHub]
    private let limitsBox: NIOLockedValueBox<LimitsConfig>
    /// Read once per connection or request (never per event); a reload may change it.
    var limits: LimitsConfig { self.limitsBox.withLockedValue { $0 } }
    let logger: Logger
    /// The access log (`access_log:`), off unless configured; sessions ask it once per request.
    let accessLog: AccessLog
    private let connectedClients = Atomic<Int>(0)
    /// Poll requests admitted and not answered yet (`limits.maxPollWaiting`).
    private let waitingPolls = Atomic<Int>(0)
    /// Poll requests by how they ended (`PollResult`).
    private let pollEvents = Atomic<Int>(0)
    private let pollIDs = Atomic<Int>(0)
    private let pollEmpty = Atomic<Int>(0)
    private let pollOverCapacity = Atomic<Int>(0)
    private let pollLeft = Atomic<Int>(0)
    private let isDraining = Atomic<Bool>(false)
    /// Streams per client address (`limits.max_clients_per_address`).
    private let addressSlots = NIOLockedValueBox(AddressSlots())
    /// Streams refused for `max_clients_per_address`.
    private let overAddressLimit = Atomic<Int>(0)
    /// HTTP/2 connections `HTTP2FloodGuard` closed, by reason (for `/metrics`).
    let http2NoProgressCloses = Atomic<Int>(0)
    let http2PrematureResetCloses = Atomic<Int>(0)
    /// Connections `proxy_protocol` listeners closed for a missing or invalid header.
    let proxyRejections = ProxyProtocolRejections()
    /// `SO_SNDBUF` as the kernel reports it on the last accepted connection (twice `socket_send_buffer` on
    /// Linux); 0 until a connection is accepted with the option set.
    let socketSendBufferBytes = Atomic<Int>(0)
    /// New connections the listeners' rate limits admitted (every accepted connection when they are off).
    private let admittedConnections = Atomic<Int>(0)
    /// New connections turned away by a listener's rate limits (`ListenerAdmission`).
    private let connectionRateRefusals = Atomic<Int>(0)
    private let tlsHandshakeRateRefusals = Atomic<Int>(0)
    /// TLS connections closed because their handshake did not finish within `limits.tls_handshake_timeout`.
    private let tlsHandshakeTimeouts = Atomic<Int>(0)
    /// Requests answered `431` for more than `limits.max_header_count` header fields.
    private let tooManyHeaderFields = Atomic<Int>(0)
    /// Connections closed after `limits.idle_connection_timeout` without a request or stream.
    private let idleConnectionCloses = Atomic<Int>(0)
    /// HTTP/2 connections SwiftNIO's handler ended (GOAWAY), by reason; rare, so a lock.
    private let http2ConnectionErrors = NIOLockedValueBox([HTTP2ConnectionError: Int]())

    init(registry: FeedRegistry, access: AccessControl, hubs: [LoopHub], limits: LimitsConfig, logger: Logger) {
        self.registry = registry
        self.access = access
        self.hubs = Dictionary(uniqueKeysWithValues: hubs.map { (ObjectIdentifier($0.loop), $0) })
        self.limitsBox = NIOLockedValueBox(limits)
        self.logger = logger
        self.accessLog = AccessLog(logger: logger)
    }

    /// The hub of the loop a handler runs on.
    func hub(for loop: EventLoop) -> LoopHub {
        guard let hub = self.hubs[ObjectIdentifier(loop)] else {
            preconditionFailure("no hub for event loop \(loop)")
        }
        return hub
    }

    var allHubs: [LoopHub] { Array(self.hubs.values) }

    func setLimits(_ limits: LimitsConfig) {
        self.limitsBox.withLockedValue { $0 = limits }
    }

    /// From now on no new client is admitted (the gateway is draining).
    func beginDraining() {
        self.isDraining.store(true, ordering: .relaxed)
    }

    var draining: Bool { self.isDraining.load(ordering: .relaxed) }

    /// Takes a client slot; false when `limits.max_clients` are connected or the gateway is draining.
    func admitClient() -> Bool {
        guard !self.isDraining.load(ordering: .relaxed) else { return false }
        let (_, after) = self.connectedClients.add(1, ordering: .relaxed)
        if after > self.limits.maxClients {
            self.connectedClients.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func releaseClient() {
        self.connectedClients.subtract(1, ordering: .relaxed)
    }

    var clientCount: Int { self.connectedClients.load(ordering: .relaxed) }

    /// Takes `count` stream slots of `address` (a stream: 1; a multi-feed stream: one per feed, as
    /// `max_clients` counts them); false, counted, over `limits.max_clients_per_address`. A request without
    /// an address (none in tests with `EmbeddedChannel`) is not limited.
    func admitAddress(_ address: String?, count: Int) -> Bool {
        guard let address else { return true }
        let limit = self.limits.maxClientsPerAddress
        let taken = self.addressSlots.withLockedValue { $0.take(address, count: count, limit: limit) }
        if !taken { self.overAddressLimit.add(1, ordering: .relaxed) }
        return taken
    }

    func releaseAddress(_ address: String?, count: Int) {
        guard let address else { return }
        self.addressSlots.withLockedValue { $0.release(address, count: count) }
    }

    /// Streams `address` holds now.
    func streams(of address: String) -> Int { self.addressSlots.withLockedValue { $0.count(of: address) } }

    /// Stream requests refused for `max_clients_per_address` (`ssegate_clients_per_address_refused_total`).
    var overAddressLimitCount: Int { self.overAddressLimit.load(ordering: .relaxed) }

    /// Takes a poll slot (not a client slot); false over `limits.maxPollWaiting` or while draining.
    func admitPoll() -> Bool {
        guard !self.isDraining.load(ordering: .relaxed) else { return false }
        let (_, after) = self.waitingPolls.add(1, ordering: .relaxed)
        if after > self.limits.maxPollWaiting {
            self.waitingPolls.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func releasePoll() {
        self.waitingPolls.subtract(1, ordering: .relaxed)
    }

    var pollWaitingCount: Int { self.waitingPolls.load(ordering: .relaxed) }

    /// An admitted poll was answered or its client left: its slot is free.
    func pollEnded(_ result: PollResult) {
        self.releasePoll()
        self.countPoll(result)
    }

    func countPoll(_ result: PollResult) {
        switch result {
        case .events: self.pollEvents.add(1, ordering: .relaxed)
        case .id: self.pollIDs.add(1, ordering: .relaxed)
        case .empty: self.pollEmpty.add(1, ordering: .relaxed)
        case .overCapacity: self.pollOverCapacity.add(1, ordering: .relaxed)
        case .left: self.pollLeft.add(1, ordering: .relaxed)
        }
    }

    func pollCount(_ result: PollResult) -> Int {
        switch result {
        case .events: return self.pollEvents.load(ordering: .relaxed)
        case .id: return self.pollIDs.load(ordering: .relaxed)
        case .empty: return self.pollEmpty.load(ordering: .relaxed)
        case .overCapacity: return self.pollOverCapacity.load(ordering: .relaxed)
        case .left: return self.pollLeft.load(ordering: .relaxed)
        }
    }

    func countHTTP2ConnectionError(_ reason: HTTP2ConnectionError) {
        self.http2ConnectionErrors.withLockedValue { $0[reason, default: 0] += 1 }
    }

    func http2ConnectionErrors(_ reason: HTTP2ConnectionError) -> Int {
        self.http2ConnectionErrors.withLockedValue { $0[reason, default: 0] }
    }

    func countIdleConnectionClose() {
        self.idleConnectionCloses.add(1, ordering: .relaxed)
    }

    var idleConnectionCloseCount: Int { self.idleConnectionCloses.load(ordering: .relaxed) }

    func countTooManyHeaderFields() {
        self.tooManyHeaderFields.add(1, ordering: .relaxed)
    }

    var tooManyHeaderFieldsCount: Int { self.tooManyHeaderFields.load(ordering: .relaxed) }

    func countTLSHandshakeTimeout() {
        self.tlsHandshakeTimeouts.add(1, ordering: .relaxed)
    }

    var tlsHandshakeTimeoutCount: Int { self.tlsHandshakeTimeouts.load(ordering: .relaxed) }

    func countConnectionAdmitted() {
        self.admittedConnections.add(1, ordering: .relaxed)
    }

    /// Connections accepted and admitted by the listeners' rate limits (`ssegate_connections_accepted_total`).
    var connectionsAdmitted: Int { self.admittedConnections.load(ordering: .relaxed) }

    func countConnectionRefused(_ refusal: ListenerAdmission.Refusal) {
        switch refusal {
        case .connectionRate: self.connectionRateRefusals.add(1, ordering: .relaxed)
        case .tlsHandshakeRate: self.tlsHandshakeRateRefusals.add(1, ordering: .relaxed)
        }
    }

    func connectionsRefused(_ refusal: ListenerAdmission.Refusal) -> Int {
        switch refusal {
        case .connectionRate: return self.connectionRateRefusals.load(ordering: .relaxed)
        case .tlsHandshakeRate: return self.tlsHandshakeRateRefusals.load(ordering: .relaxed)
        }
    }

    func countFloodClose(_ reason: HTTP2FloodGuard.Reason) {
        switch reason {
        case .noProgressFrames: self.http2NoProgressCloses.add(1, ordering: .relaxed)
        case .prematureResets: self.http2PrematureResetCloses.add(1, ordering: .relaxed)
        }
    }

    func floodCloses(_ reason: HTTP2FloodGuard.Reason) -> Int {
        switch reason {
        case .noProgressFrames: return self.http2NoProgressCloses.load(ordering: .relaxed)
        case .prematureResets: return self.http2PrematureResetCloses.load(ordering: .relaxed)
        }
    }
}
