import Logging
import NIOCore
import NIOSSL
import SSE

/// One concrete feed (a plain path, or one value of a template path): its single upstream connection,
/// its replay ring, and the shards (one per event loop) of its clients. Lives on `loop`; every method
/// is called there.
public final class Feed {
    /// The concrete path clients use, e.g. `/rooms/42`.
    public let path: String
    public private(set) var config: FeedConfig
    public let loop: EventLoop
    var settings: FeedSettings { self.config.settings }
    var definitionName: String { self.config.name }
    /// The path as written in the config (`/rooms/{room}` for a template instance).
    var definitionPath: String { self.config.path.description }

    private var replay: ReplayBuffer
    private var shards: [ObjectIdentifier: FeedShard] = [:]
    private var upstream: UpstreamClient
    private var lingerTask: Scheduled<Void>?
    private let allocator = ByteBufferAllocator()
    private let logger: Logger
    /// Called (on `loop`) when an on-demand template instance has lingered out and closed.
    var onClose: ((Feed) -> Void)?
    private(set) var isClosed = false
    /// The template values this instance was made for (empty for a plain feed), to fill a new URL on reload.
    let values: [String: String]
    /// Prefix of gateway-assigned ids, unique per process start so ids never repeat across restarts.
    private let idPrefix: String

    // Counters read by /metrics and /api/feeds (on `loop`).
    private(set) var eventsIn = 0
    private(set) var replaysServed = 0
    private(set) var replayGaps = 0
    private(set) var upstreamFailures = 0
    private var parked: [ParkedJoin] = []
    private var parkedTokens = 0

    init(path: String, config: FeedConfig, values: [String: String], loop: EventLoop, tlsContext: Result<NIOSSLContext, Error>?, idPrefix: String, logger: Logger) {
        self.path = path
        self.config = config
        self.values = values
        let upstreamURL = config.upstreamURL.filled(with: values)
        self.loop = loop
        self.idPrefix = idPrefix
        var logger = logger
        logger[metadataKey: "feed"] = "\(path)"
        self.logger = logger
        let replay = config.settings.replay
        self.replay = ReplayBuffer(maxEvents: replay.maxEvents, maxBytes: replay.maxBytes, maxAge: replay.maxAge)
        self.upstream = UpstreamClient(loop: loop, url: upstreamURL, settings: config.settings.upstream, tlsContext: tlsContext, logger: logger)
        self.upstream.delegate = self
    }

    var isTemplateInstance: Bool { self.config.path.isTemplate }

    /// Starts the upstream if this feed holds it regardless of clients.
    func start() {
        self.loop.preconditionInEventLoop()
        if self.config.connect == .always {
            self.upstream.start()
        }
    }

    /// A reload changed this feed's definition: clients, replay buffer and (unless the upstream changed)
    /// the upstream connection stay; a changed upstream reconnects with the last id it received.
    func update(to config: FeedConfig, tlsContext: Result<NIOSSLContext, Error>?) {
        self.loop.preconditionInEventLoop()
        guard !self.isClosed, config != self.config else { return }
        let old = self.config
        self.config = config
        let replay = config.settings.replay
        if replay != old.settings.replay {
            self.replay.rebound(maxEvents: replay.maxEvents, maxBytes: replay.maxBytes, maxAge: replay.maxAge, now: .now())
        }
        if config.upstreamURL != old.upstreamURL || config.settings.upstream != old.settings.upstream {
            let wasRunning = self.upstream.state != .idle && self.upstream.state != .stopped
            let lastEventID = self.upstream.lastEventID
            self.upstream.stop()
            self.upstream = UpstreamClient(
                loop: self.loop, url: config.upstreamURL.filled(with: self.values), settings: config.settings.upstream,
                tlsContext: tlsContext, logger: self.logger
            )
            self.upstream.delegate = self
            if !lastEventID.isEmpty { _ = self.upstream.seedLastEventID(lastEventID) }
            if wasRunning { self.upstream.start() }
            self.logger.notice("upstream changed by reload: reconnecting", metadata: ["upstream": "\(self.upstream.url)"])
        }
        if config.connect == .always && !self.isTemplateInstance {
            self.upstream.start()
        } else if self.shards.isEmpty {
            self.scheduleLinger()
        }
        let settings = config.settings
        for shard in self.shards.values {
            shard.loop.execute { shard.update(settings: settings) }
        }
    }

    /// The feed was removed by a reload: every client gets a `retry:` and its stream is ended, then the
    /// upstream closes.
    func remove() {
        self.loop.preconditionInEventLoop()
        for shard in self.shards.values {
            shard.loop.execute { shard.endAll(retry: shard.settings.retry) }
        }
        self.shards.removeAll()
        self.close()
    }

    /// Stops the upstream for good (shutdown or reload removal).
    func close() {
        self.loop.preconditionInEventLoop()
        guard !self.isClosed else { return }
        self.isClosed = true
        self.lingerTask?.cancel()
        self.lingerTask = nil
        for join in self.parked { self.releaseParked(join.token) }
        self.upstream.stop()
    }

    // MARK: Clients

    /// A shard asks to receive this feed on behalf of a new client; returns what the client gets first,
    /// or nil when the feed has closed (the caller resolves the path again).
    func join(_ shard: FeedShard, resumeID: String?, reply: @escaping (ReplayBuffer.Lookup?) -> Void) {
        self.loop.preconditionInEventLoop()
        guard !self.isClosed else { return reply(nil) }
        self.shards[ObjectIdentifier(shard)] = shard
        if let linger = self.lingerTask {
            linger.cancel()
            self.lingerTask = nil
        }
        // A feed that has never received an event and is about to connect asks the upstream to resume
        // from the first joiner's id, as the browser itself would have: the backend fills the gap.
        let seeded = self.seedUpstream(from: resumeID)
        if self.config.connect == .onDemand || self.isTemplateInstance {
            self.upstream.start()
        }
        var lookup = self.replay.lookup(after: resumeID, now: .now())
        if seeded {
            lookup.resume = .live
        }
        if lookup.resume == .gap, let resumeID, self.mayArriveSoon(resumeID) {
            // Behind a load balancer a client may fail over to this replica a moment before this replica
            // has the event it last saw: wait a little for that id rather than replay the whole buffer.
            return self.park(resumeID: resumeID, reply: reply)
        }
        self.answer(lookup, reply)
    }

    private func answer(_ lookup: ReplayBuffer.Lookup, _ reply: (ReplayBuffer.Lookup?) -> Void) {
        switch lookup.resume {
        case .live: break
        case .resumed: self.replaysServed += 1
        case .gap:
            self.replaysServed += 1
            self.replayGaps += 1
        }
        reply(lookup)
    }

    /// How long a resume from an id this feed has not seen waits for it to arrive from upstream.
    static let resumeWait = TimeAmount.milliseconds(1000)

    private struct ParkedJoin {
        var token: Int
        var resumeID: String
        var reply: (ReplayBuffer.Lookup?) -> Void
        var timeout: Scheduled<Void>
    }

    /// An unknown id may be one this replica will receive in a moment (upstream ids only). Numeric ids
    /// older than the newest one held are known to be in the past: no wait for those.
    private func mayArriveSoon(_ resumeID: String) -> Bool {
        guard self.config.ids == .upstream else { return false }
        if let wanted = Int64(resumeID), let newest = Int64(self.upstream.lastEventID), wanted <= newest {
            return false
        }
        return true
    }

    private func park(resumeID: String, reply: @escaping (ReplayBuffer.Lookup?) -> Void) {
        self.parkedTokens += 1
        let token = self.parkedTokens
        let timeout = self.loop.scheduleTask(in: Self.resumeWait) { [weak self] () -> Void in
            self?.releaseParked(token)
        }
        self.parked.append(ParkedJoin(token: token, resumeID: resumeID, reply: reply, timeout: timeout))
    }

    /// Answers a parked join with what the ring holds now (resumed if its id has arrived, else a gap).
    private func releaseParked(_ token: Int) {
        guard let index = self.parked.firstIndex(where: { $0.token == token }) else { return }
        let join = self.parked.remove(at: index)
        join.timeout.cancel()
        if self.isClosed { return join.reply(nil) }
        self.answer(self.replay.lookup(after: join.resumeID, now: .now()), join.reply)
    }

    private func seedUpstream(from resumeID: String?) -> Bool {
        guard self.config.ids == .upstream, let resumeID, !resumeID.isEmpty, self.replay.lastSequence == 0 else { return false }
        return self.upstream.seedLastEventID(resumeID)
    }

    /// A shard has no clients left.
    func detach(_ shard: FeedShard) {
        self.loop.preconditionInEventLoop()
        guard self.shards.removeValue(forKey: ObjectIdentifier(shard)) != nil else { return }
        // Template instances always close after lingering (whatever `connect` says), so that values
        // nobody watches any more never hold an upstream or a `max_feeds` slot.
        guard self.shards.isEmpty else { return }
        self.scheduleLinger()
    }

    /// With no client left, an on-demand feed (and any template instance) lets go of its upstream after
    /// `linger`.
    private func scheduleLinger() {
        guard self.shards.isEmpty, self.config.connect == .onDemand || self.isTemplateInstance, !self.isClosed else { return }
        self.lingerTask?.cancel()
        self.lingerTask = self.loop.scheduleTask(in: self.config.linger) { [weak self] in
            guard let self, self.shards.isEmpty else { return }
            self.lingerTask = nil
            self.logger.debug("no clients for the linger time: closing upstream")
            if self.isTemplateInstance {
                self.close()
                self.onClose?(self)
            } else {
                self.upstream.stop()
            }
        }
    }

    var clientShardCount: Int { self.shards.count }

    // MARK: Status

    /// A point-in-time view for `/metrics` and `/api/feeds` (call on `loop`).
    func status() -> FeedStatus {
        FeedStatus(
            path: self.path, definition: self.definitionName, upstreamURL: self.upstream.url.description,
            upstreamState: UpstreamStateName(self.upstream.state), lastEventID: self.upstream.lastEventID,
            replayEvents: self.replay.count, replayBytes: self.replay.totalBytes, eventsIn: self.eventsIn,
            replaysServed: self.replaysServed, replayGaps: self.replayGaps, upstreamReconnects: self.upstream.reconnects,
            upstreamFailures: self.upstreamFailures, retired: false
        )
    }
}

extension Feed: UpstreamDelegate {
    func upstreamReceived(_ events: [ServerSentEvent]) {
        let now = NIODeadline.now()
        var batch: [EncodedEvent] = []
        batch.reserveCapacity(events.count)
        for var event in events {
            if self.config.ids == .gateway, event.id == nil, event.data != nil {
                event.id = "\(self.idPrefix)\(self.replay.nextSequence)"
            }
            let encoded = EncodedEvent(sequence: self.replay.nextSequence, event: event, receivedAt: now, allocator: self.allocator)
            self.replay.append(encoded, now: now)
            batch.append(encoded)
        }
        self.eventsIn += batch.count
        // Hand the batch to the other loops first, then write to this loop's clients: the loops then
        // work in parallel instead of the others waiting for this loop's whole pass. Each other loop gets
        // its own copy of the bytes (see `EncodedEvent.copy`).
        var local: FeedShard?
        for shard in self.shards.values {
            if shard.loop === self.loop {
                local = shard
            } else {
                shard.post(batch.map { $0.copy(allocator: self.allocator) })
            }
        }
        local?.deliver(batch)
        if !self.parked.isEmpty {
            let arrived = Set(events.compactMap(\.id))
            for join in self.parked where arrived.contains(join.resumeID) {
                self.releaseParked(join.token)
            }
        }
    }

    func upstreamStateChanged(_ state: UpstreamStateMachine.State, failure: UpstreamFailure?) {
        if failure != nil { self.upstreamFailures += 1 }
    }
}

/// The upstream state as `/metrics` and `/api/feeds` name it.
public enum UpstreamStateName: String, Sendable, CaseIterable {
    case idle, connecting, streaming, backoff, stopped

    init(_ state: UpstreamStateMachine.State) {
        switch state {
        case .idle: self = .idle
        case .connecting: self = .connecting
        case .streaming: self = .streaming
        case .waiting: self = .backoff
        case .stopped: self = .stopped
        }
    }
}

/// A copy of one feed's state, safe to carry across threads.
public struct FeedStatus: Sendable {
    public var path: String
    public var definition: String
    public var upstreamURL: String
    public var upstreamState: UpstreamStateName
    public var lastEventID: String
    public var replayEvents: Int
    public var replayBytes: Int
    public var eventsIn: Int
    public var replaysServed: Int
    public var replayGaps: Int
    public var upstreamReconnects: Int
    public var upstreamFailures: Int
    /// A closed template instance whose totals are kept so that counters never go backwards.
    public var retired: Bool

    /// Adds another instance's counters and buffer sizes (per-definition totals).
    mutating func accumulate(_ other: FeedStatus) {
        self.eventsIn += other.eventsIn
        self.replaysServed += other.replaysServed
        self.replayGaps += other.replayGaps
        self.upstreamReconnects += other.upstreamReconnects
        self.upstreamFailures += other.upstreamFailures
        self.replayEvents += other.replayEvents
        self.replayBytes += other.replayBytes
    }
}
