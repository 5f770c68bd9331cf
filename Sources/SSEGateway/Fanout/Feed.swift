import Logging
import NIOConcurrencyHelpers
import NIOCore
import SSE

/// One concrete feed (a plain path, or one value of a template path): its single upstream connection,
/// its replay ring, and the shards (one per event loop) of its clients. Lives on `loop`; every method
/// is called there. When it holds its upstream, lingers and closes is decided by `FeedLifecycle`; this
/// class carries out its actions and answers joins from the replay ring.
///
/// Sendable because shards and sessions on every loop and the registry hold it: `path`, `loop`, `values`,
/// `idPrefix`, `isTemplateInstance`, `definitionPath`, `allocator` and `logger` never change; `shared`
/// is guarded by its lock; `onClose` is set by the registry before the feed is shared; every other
/// stored property is confined to `loop` (each entry point checks `preconditionInEventLoop`).
public final class Feed: @unchecked Sendable {
    /// The concrete path clients use, e.g. `/rooms/42`.
    public let path: String
    public private(set) var config: FeedConfig
    public let loop: EventLoop
    var settings: FeedSettings { self.config.settings }
    var definitionName: String { self.config.name }
    /// The path as written in the config (`/rooms/{room}` for a template instance); a reload only ever
    /// gives a feed a definition of the same path.
    let definitionPath: String
    let isTemplateInstance: Bool
    /// The definition's name and settings for a shard made on another loop (written on reload).
    private let shared: NIOLockedValueBox<SharedDefinition>

    struct SharedDefinition: Sendable {
        var name: String
        var settings: FeedSettings
    }

    /// The definition's name and settings, from any loop.
    var sharedDefinition: SharedDefinition { self.shared.withLockedValue { $0 } }

    private var replay: ReplayBuffer
    /// The id of the newest event delivered that carries one, even when the ring no longer holds it.
    private var lastDeliveredID: String?
    private var shards: [ObjectIdentifier: ShardLink] = [:]
    private var upstream: UpstreamClient
    private var lifecycle: FeedLifecycle
    private var lingerTask: Scheduled<Void>?
    private let allocator = ByteBufferAllocator()
    private let logger: Logger
    /// Called (on `loop`) when an on-demand template instance has lingered out and closed.
    var onClose: ((Feed) -> Void)?
    var isClosed: Bool { self.lifecycle.isClosed }
    /// The template values this instance was made for (empty for a plain feed), to fill a new URL on reload.
    let values: [String: String]
    /// Prefix of gateway-assigned ids, unique per process start so ids never repeat across restarts.
    private let idPrefix: String

    // Counters read by /metrics and /api/feeds (on `loop`).
    private(set) var eventsIn = 0
    private(set) var replaysServed = 0
    private(set) var replayGaps = 0
    private(set) var upstreamFailures = 0
    /// The joins parked (see `FeedLifecycle.parked`), with what answering them needs.
    private var parked: [ParkedJoin] = []
    /// Moving the ring's start back to an older id a client needs (see `ReplayRebase`).
    private var rebase: ReplayRebase
    private var rebaseTimeout: Scheduled<Void>?
    /// Rebases this feed may still make: each costs an upstream request, and a client can ask for any id.
    private var rebasesLeft = Feed.maxRebases
    /// Ids a rebase started from: never again (a backend that does not know one would loop).
    private var rebasedFrom: Set<String> = []
    /// The joins a new template instance holds until its upstream's first response is known (see
    /// `FeedLifecycle.State.connecting`), with what answering them needs.
    private var heldJoins: [FeedLifecycle.JoinID: HeldJoin] = [:]
    private var firstResponseTimeout: Scheduled<Void>?
    /// The id the upstream was asked to resume after (`seedUpstream`) until its first event with an id
    /// shows whether it did (`checkResumed`).
    private var unconfirmedSeed: String?

    private struct HeldJoin {
        var resumeID: String?
        var seeded: Bool
        var reply: (JoinAnswer) -> Void
    }

    init(
        path: String,
        config: FeedConfig,
        values: [String: String],
        loop: EventLoop,
        tlsContext: UpstreamTLSContext?,
        idPrefix: String,
        logger: Logger
    ) {
        self.path = path
        self.config = config
        self.definitionPath = config.path.description
        self.isTemplateInstance = config.path.isTemplate
        self.shared = NIOLockedValueBox(SharedDefinition(name: config.name, settings: config.settings))
        self.values = values
        let upstreamURL = config.upstreamURL.filled(with: values)
        self.loop = loop
        self.idPrefix = idPrefix
        var logger = logger
        logger[metadataKey: "feed"] = "\(path)"
        self.logger = logger
        let replay = config.settings.replay
        self.replay = ReplayBuffer(maxEvents: replay.maxEvents, maxBytes: replay.maxBytes, maxAge: replay.maxAge)
        self.rebase = ReplayRebase(limit: replay.maxEvents)
        self.lifecycle = FeedLifecycle(mode: Self.mode(of: config), isTemplateInstance: config.path.isTemplate)
        self.upstream = UpstreamClient(
            loop: loop,
            url: upstreamURL,
            settings: config.settings.upstream,
            tlsContext: tlsContext,
            logger: logger
        )
        self.upstream.delegate = self
    }

    private static func mode(of config: FeedConfig) -> FeedLifecycle.Mode {
        FeedLifecycle.Mode(connect: config.connect, isTemplateInstance: config.path.isTemplate, linger: config.linger)
    }

    /// Starts the upstream if this feed holds it regardless of clients.
    func start() {
        self.loop.preconditionInEventLoop()
        self.run(self.lifecycle.start())
    }

    /// Carries out what the lifecycle decided (the inputs with their own context carry out the rest).
    private func run(_ action: FeedLifecycle.Action) {
        switch action {
        case .none:
            break
        case .startUpstream:
            self.upstream.start()
        case .stopUpstream:
            self.logger.debug("no clients for the linger time: closing upstream")
            self.upstream.stop()
            // A rebase still collecting or replaying ends with the upstream: the next connection resumes
            // after the newest id the ring holds (not from a rebase's older id, which would repeat events).
            self.abandonRebase()
        case .scheduleLinger(let linger):
            self.scheduleLinger(linger)
        case .answerHeld(let joins):
            self.firstResponseTimeout?.cancel()
            self.firstResponseTimeout = nil
            for id in joins {
                guard let join = self.heldJoins.removeValue(forKey: id) else { continue }
                self.resolveJoin(id, resumeID: join.resumeID, seeded: join.seeded, reply: join.reply)
            }
        case .answerParked(let id):
            guard let index = self.parked.firstIndex(where: { $0.id == id }) else { return }
            let join = self.parked.remove(at: index)
            join.timeout?.cancel()
            self.answer(self.replay.lookup(after: join.resumeID, now: .now()), join.reply)
        case .close(let closing):
            self.carryOut(closing)
        case .join, .replyClosed, .reload:
            preconditionFailure("\(action) needs its input's context")
        }
    }

    private func carryOut(_ closing: FeedLifecycle.Closing) {
        if case .upstreamRefused(let status) = closing.heldAnswer {
            self.logger.debug("upstream has no such value: closing the instance", metadata: ["status": "\(status)"])
        } else if closing.forget {
            self.logger.debug("no clients for the linger time: closing upstream")
        }
        self.lingerTask?.cancel()
        self.lingerTask = nil
        self.rebase.cancel()
        self.rebaseTimeout?.cancel()
        self.rebaseTimeout = nil
        self.firstResponseTimeout?.cancel()
        self.firstResponseTimeout = nil
        for id in closing.held {
            guard let join = self.heldJoins.removeValue(forKey: id) else { continue }
            switch closing.heldAnswer {
            case .closed: join.reply(.closed)
            case .upstreamRefused(let status): join.reply(.upstreamRefused(status: status))
            }
        }
        let parked = self.parked
        self.parked.removeAll()
        for join in parked where closing.parked.contains(join.id) {
            join.timeout?.cancel()
            join.reply(.closed)
        }
        self.upstream.stop()
        if closing.forget { self.onClose?(self) }
    }

    /// A reload changed this feed's definition: clients, replay buffer and (unless the upstream changed)
    /// the upstream connection stay; a changed upstream reconnects with the last id it received.
    func update(to config: FeedConfig, tlsContext: UpstreamTLSContext?) {
        self.loop.preconditionInEventLoop()
        guard config != self.config else { return }
        let old = self.config
        let action = self.lifecycle.reload(
            to: Self.mode(of: config),
            upstreamChanged: config.upstreamURL != old.upstreamURL || config.settings.upstream != old.settings.upstream,
            upstreamRunning: self.upstream.state.isRunning,
            hasClients: !self.shards.isEmpty
        )
        guard case .reload(let reload) = action else { return }  // closed
        self.config = config
        self.shared.withLockedValue { $0 = SharedDefinition(name: config.name, settings: config.settings) }
        let replay = config.settings.replay
        if replay != old.settings.replay {
            self.replay.rebound(
                maxEvents: replay.maxEvents,
                maxBytes: replay.maxBytes,
                maxAge: replay.maxAge,
                now: .now()
            )
        }
        if reload.swapUpstream {
            let lastEventID = self.upstream.lastEventID
            self.upstream.stop()
            self.upstream = UpstreamClient(
                loop: self.loop,
                url: config.upstreamURL.filled(with: self.values),
                settings: config.settings.upstream,
                tlsContext: tlsContext,
                logger: self.logger
            )
            self.upstream.delegate = self
            if !lastEventID.isEmpty { _ = self.upstream.seedLastEventID(lastEventID) }
            if reload.startSwapped { self.upstream.start() }
            self.logger.notice(
                "upstream changed by reload: reconnecting",
                metadata: ["upstream": "\(self.upstream.url)"]
            )
        }
        if reload.cancelLinger {
            self.lingerTask?.cancel()
            self.lingerTask = nil
        }
        if reload.startUpstream { self.upstream.start() }
        if let linger = reload.scheduleLinger { self.scheduleLinger(linger) }
        let settings = config.settings
        for link in self.shards.values {
            link.execute { $0.update(settings: settings) }
        }
    }

    /// The feed was removed by a reload: every client gets a `retry:` and its stream is ended, then the
    /// upstream closes.
    func remove() {
        self.loop.preconditionInEventLoop()
        for link in self.shards.values {
            link.execute { $0.endAll(retry: $0.settings.retry, reason: .feedRemoved) }
        }
        self.shards.removeAll()
        self.close()
    }

    /// Stops the upstream for good (shutdown or reload removal).
    func close() {
        self.loop.preconditionInEventLoop()
        self.run(self.lifecycle.close())
    }

    // MARK: Clients

    /// A shard asks to receive this feed on behalf of a new client; `reply` gets what the client gets
    /// first (`JoinAnswer`): at once, when the client's id arrives, when a rebase has fetched it, or
    /// when a new template instance's upstream has answered.
    /// `shardSettings`: the settings the shard has (made on its loop, it may have missed a reload).
    func join(
        _ shard: ShardLink,
        shardSettings: FeedSettings,
        resumeID: String?,
        reply: @escaping (JoinAnswer) -> Void
    ) {
        self.loop.preconditionInEventLoop()
        let action = self.lifecycle.join()
        guard case .join(let id, let cancelLinger, let startUpstream, let next) = action else {
            precondition(action == .replyClosed, "unexpected \(action) on join")
            return reply(.closed)
        }
        self.shards[shard.id] = shard
        if shardSettings != self.settings {
            // Made on its loop before a reload changed the settings, joined after it.
            let settings = self.settings
            shard.execute { $0.update(settings: settings) }
        }
        if cancelLinger {
            self.lingerTask?.cancel()
            self.lingerTask = nil
        }
        // A feed that has never received an event and is about to connect asks the upstream to resume
        // from the first joiner's id, as the browser itself would have: the backend fills the gap.
        let seeded = self.seedUpstream(from: resumeID)
        if startUpstream {
            self.upstream.start()
        }
        switch next {
        case .hold(let armTimeout):
            if armTimeout {
                self.firstResponseTimeout = self.loop.assumeIsolated().scheduleTask(
                    in: self.settings.upstream.connectTimeout
                ) { [weak self] () -> Void in
                    guard let self else { return }
                    self.run(self.lifecycle.firstResponseTimedOut())
                }
            }
            self.heldJoins[id] = HeldJoin(resumeID: resumeID, seeded: seeded, reply: reply)
        case .resolve:
            self.resolveJoin(id, resumeID: resumeID, seeded: seeded, reply: reply)
        }
    }

    // MARK: Resuming

    private func resolveJoin(
        _ id: FeedLifecycle.JoinID,
        resumeID: String?,
        seeded: Bool,
        reply: @escaping (JoinAnswer) -> Void
    ) {
        var lookup = self.replay.lookup(after: resumeID, now: .now())
        if seeded {
            lookup.resume = .live
        }
        if lookup.resume == .gap, let resumeID {
            if self.rebase.isCollecting {
                // The ring's start is moving back: answered when it has.
                return self.park(id, resumeID: resumeID, wait: nil, reply: reply)
            }
            switch self.resumeOrder(resumeID) {
            case .unknown where self.mayArriveSoon(resumeID), .newer where self.mayArriveSoon(resumeID):
                // Behind a load balancer a client may fail over to this replica a moment before this replica
                // has the event it last saw: wait a little for that id rather than replay the whole buffer.
                // An opaque id that does not arrive may be an older one: `parkedWaitEnded` rebases then.
                return self.park(id, resumeID: resumeID, wait: Self.resumeWait, reply: reply)
            case .older where self.mayRebase(from: resumeID):
                self.startRebase(from: resumeID)
                return self.park(id, resumeID: resumeID, wait: nil, reply: reply)
            case .older, .newer, .unknown, .within:
                break
            }
        }
        self.answer(lookup, reply)
    }

    private func answer(_ lookup: ReplayBuffer.Lookup, _ reply: (JoinAnswer) -> Void) {
        var lookup = lookup
        lookup.lastID = self.lastDeliveredID
        switch lookup.resume {
        case .live: break
        case .resumed: self.replaysServed += 1
        case .gap:
            self.replaysServed += 1
            self.replayGaps += 1
        }
        reply(.joined(lookup))
    }

    /// How long a resume from an id this feed has not seen waits for it to arrive from upstream.
    static let resumeWait = TimeAmount.milliseconds(1000)

    private struct ParkedJoin {
        var id: FeedLifecycle.JoinID
        var resumeID: String
        var reply: (JoinAnswer) -> Void
        /// Nil while waiting for a rebase (which answers it when it ends).
        var timeout: Scheduled<Void>?
        var since: NIODeadline
    }

    // MARK: Moving the ring's start back to an older id (rebase)

    /// At most this many rebases per feed (each is one upstream request).
    static let maxRebases = 32

    /// Where a resume id not in the ring lies relative to it, as far as the gateway can tell: ids are
    /// opaque strings, but when the id and the ring's ends are all integers they are compared as such.
    enum ResumeOrder {
        /// Before the ring's start: the ring can be moved back to it.
        case older
        /// Between the ring's start and its newest event (the upstream skipped it).
        case within
        /// After the newest event received: it may arrive in a moment.
        case newer
        /// Not comparable.
        case unknown
    }

    private func resumeOrder(_ resumeID: String) -> ResumeOrder {
        guard let wanted = Int64(resumeID) else { return .unknown }
        // The newest id the ring holds (the upstream may have received more that a rebase holds back).
        if let newest = self.replay.newestID.flatMap({ Int64($0) }) ?? Int64(self.upstream.lastEventID), wanted > newest
        {
            return .newer
        }
        guard let start = (self.replay.startID ?? self.replay.oldestID).flatMap({ Int64($0) }) else { return .unknown }
        return wanted < start ? .older : .within
    }

    /// The upstream is connecting (its replay is about to come), or replaying for a rebase. Not while
    /// it backs off: an upstream that is down must not hold clients' heads back.
    private var upstreamCatchingUp: Bool {
        if case .connecting = self.upstream.state { return true }
        return self.rebase.state != .idle
    }

    /// The ring can be moved back to an older id: it still holds everything since it started, that
    /// start is known (an id it started after, or an integer first event older ids can be placed
    /// before), and the budget is not spent.
    private func mayRebase(from resumeID: String) -> Bool {
        !self.rebasedFrom.contains(resumeID) && self.config.ids == .upstream && self.rebasesLeft > 0
            && self.replay.maxEvents > 0 && !self.replay.hasTrimmed
            && (self.replay.startID != nil || self.ringStartsAfter(integer: resumeID))
            && !self.rebase.isCollecting && !self.lifecycle.isClosed
    }

    /// A ring with no start id (its upstream started live, as a `connect: always` feed's does after a
    /// restart, or did not resume after its seed) whose first held event has an integer id greater than
    /// `resumeID`. That event marks where the backend's replay joins the ring: the events before it are
    /// collected, the ones from it on are already held (`ReplayRebase` with no ring start), and a backend
    /// that ignores Last-Event-ID answers with an id newer than the ring's, which ends the rebase at once.
    /// Opaque ids give no such joint (the replay of a backend that does not know the id could not be
    /// told from history), so rings without a start id never rebase for them.
    private func ringStartsAfter(integer resumeID: String) -> Bool {
        guard let wanted = Int64(resumeID), let first = self.replay.firstID.flatMap({ Int64($0) }) else {
            return false
        }
        return wanted < first
    }

    /// Reconnects the upstream from `resumeID`, older than the ring's start (see `ReplayRebase`).
    private func startRebase(from resumeID: String) {
        // The rebase's own matching of ids (the ring's start, the ids it holds) judges what comes now.
        self.unconfirmedSeed = nil
        self.rebasesLeft -= 1
        self.rebasedFrom.insert(resumeID)
        self.rebase.begin(from: resumeID, ringStart: self.replay.startID)
        self.upstream.restart(from: resumeID)
        self.rebaseTimeout?.cancel()
        self.rebaseTimeout = self.loop.assumeIsolated().scheduleTask(
            in: self.settings.upstream.connectTimeout + Self.resumeWait
        ) { [weak self] () -> Void in
            self?.rebaseTimedOut()
        }
        self.logger.debug("moving the replay start back for a client", metadata: ["from": "\(resumeID)"])
    }

    /// The upstream never got back to the ring's start (the backend does not know the id, ignores it, or
    /// is slow): what it sent cannot be placed (older or newer? ids are opaque), so it is delivered as new
    /// events (never dropped: for a backend that ignores Last-Event-ID they are live events), unless its
    /// integer ids show it is history (sent again to every client, it would repeat old events), and the
    /// upstream resumes from the newest id the ring holds. The clients that waited get what the ring
    /// holds (a gap).
    private func rebaseTimedOut() {
        self.rebaseTimeout = nil
        let collected = self.rebase.giveUp(newestHeld: self.replay.newestID)
        if !collected.isEmpty { self.appendAndDeliver(collected) }
        let running = self.upstream.state.isRunning
        if running, let resumeFrom = self.replay.newestID ?? self.replay.startID {
            self.upstream.restart(from: resumeFrom)
        }
        self.rebaseEnded()
    }

    /// The rebase placed its events (or gave up): answer the clients that waited for it; those whose id
    /// is still not held may start the next rebase (the oldest of them, when ids are integers).
    private func rebaseEnded() {
        self.rebaseTimeout?.cancel()
        self.rebaseTimeout = nil
        var candidates: [ParkedJoin] = []
        for join in self.parked where join.timeout == nil {
            guard self.replay.lookup(after: join.resumeID, now: .now()).resume == .gap else {
                self.releaseParked(join.id)
                continue
            }
            switch self.resumeOrder(join.resumeID) {
            case .newer:
                self.rearm(join.id, wait: Self.resumeWait)
            case .older, .unknown:
                if self.mayRebase(from: join.resumeID) {
                    candidates.append(join)  // stays parked for the next rebase's end
                } else {
                    self.releaseParked(join.id)
                }
            case .within:
                self.releaseParked(join.id)
            }
        }
        if let oldest = candidates.min(by: { (Int64($0.resumeID) ?? .max) < (Int64($1.resumeID) ?? .max) }) {
            self.startRebase(from: oldest.resumeID)
        }
    }

    /// The upstream was let go (linger) while a rebase was collecting or skipping the replay of what the
    /// ring holds: nobody waits for it any more. It ends here, and the next connection resumes after the
    /// newest id the ring holds, not from the older id the rebase's replay had reached: that replay,
    /// taken up hours later, would find the ring trimmed and deliver its events again as new ones.
    private func abandonRebase() {
        guard self.rebase.state != .idle else { return }
        self.rebase.cancel()
        self.rebaseTimeout?.cancel()
        self.rebaseTimeout = nil
        for join in self.parked where join.timeout == nil { self.releaseParked(join.id) }
        if let newest = self.replay.newestID ?? self.replay.startID {
            self.upstream.resume(from: newest)
        }
    }

    // MARK: Joins waiting for an id

    /// An unknown id may be one this replica will receive in a moment (upstream ids only). Numeric ids
    /// older than the newest one held are known to be in the past: no wait for those.
    private func mayArriveSoon(_ resumeID: String) -> Bool {
        guard self.config.ids == .upstream else { return false }
        if let wanted = Int64(resumeID), let newest = Int64(self.upstream.lastEventID), wanted <= newest {
            return false
        }
        return true
    }

    /// Holds a join until its id arrives (`wait`), or until the rebase under way ends (nil).
    private func park(
        _ id: FeedLifecycle.JoinID,
        resumeID: String,
        wait: TimeAmount?,
        reply: @escaping (JoinAnswer) -> Void
    ) {
        self.lifecycle.parked(id)
        let timeout = wait.map { self.parkedTimeout(id, in: $0) }
        self.parked.append(ParkedJoin(id: id, resumeID: resumeID, reply: reply, timeout: timeout, since: .now()))
    }

    private func rearm(_ id: FeedLifecycle.JoinID, wait: TimeAmount) {
        guard let index = self.parked.firstIndex(where: { $0.id == id }) else { return }
        self.parked[index].timeout = self.parkedTimeout(id, in: wait)
    }

    private func parkedTimeout(_ id: FeedLifecycle.JoinID, in wait: TimeAmount) -> Scheduled<Void> {
        self.loop.assumeIsolated().scheduleTask(in: wait) { [weak self] () -> Void in
            self?.parkedWaitEnded(id)
        }
    }

    /// A parked id did not arrive in time: it may be an older one (opaque ids cannot be compared), so
    /// the ring is moved back to it if it still can be; otherwise the client gets a gap.
    private func parkedWaitEnded(_ id: FeedLifecycle.JoinID) {
        guard let index = self.parked.firstIndex(where: { $0.id == id }) else { return }
        let resumeID = self.parked[index].resumeID
        let stillMissing = self.replay.lookup(after: resumeID, now: .now()).resume == .gap
        let order = self.resumeOrder(resumeID)
        if stillMissing,
            self.rebase.isCollecting || ((order == .unknown || order == .older) && self.mayRebase(from: resumeID))
        {
            self.parked[index].timeout = nil
            if !self.rebase.isCollecting { self.startRebase(from: resumeID) }
            return
        }
        if stillMissing, order == .newer, self.upstreamCatchingUp || self.upstream.state.isRunning,
            NIODeadline.now() - self.parked[index].since < self.newerIDWait
        {
            // An integer id newer than all the upstream sent: another replica is ahead of this one (its
            // upstream connects, backs off, or is stalled until idle_timeout). A gap would replay the
            // whole ring, every event of which this client already has; the id will come.
            return self.rearm(id, wait: Self.resumeWait)
        }
        self.releaseParked(id)
    }

    /// How long an integer id newer than everything the upstream sent is waited for while the upstream
    /// runs: long enough for a stalled upstream to be found idle and reconnect (idle_timeout +
    /// connect_timeout + the resume wait), but at most `newerIDWaitLimit`: the client's response waits.
    private var newerIDWait: TimeAmount {
        let upstream = self.settings.upstream
        let short = upstream.connectTimeout + Self.resumeWait
        return max(short, min(short + upstream.idleTimeout, Self.newerIDWaitLimit))
    }

    static let newerIDWaitLimit = TimeAmount.seconds(10)

    /// Answers a parked join with what the ring holds now (resumed if its id has arrived, else a gap).
    private func releaseParked(_ id: FeedLifecycle.JoinID) {
        self.run(self.lifecycle.releaseParked(id))
    }

    private func seedUpstream(from resumeID: String?) -> Bool {
        // The ring must never have held an event (what `start(after:)` requires): checked here, not inferred
        // from the upstream's state (a rebase can prepend into a seeded ring whose `lastSequence` stays 0).
        guard self.config.ids == .upstream, let resumeID, !resumeID.isEmpty, self.replay.lastSequence == 0,
            self.replay.count == 0, !self.replay.hasTrimmed
        else { return false }
        guard self.upstream.seedLastEventID(resumeID) else { return false }
        self.unconfirmedSeed = resumeID
        // The ring starts after that id: later clients holding it resume without a gap, and one holding
        // an older id can move the start back (`startRebase`).
        self.replay.start(after: resumeID)
        return true
    }

    /// A shard has no clients left.
    func detach(_ shard: ObjectIdentifier) {
        self.loop.preconditionInEventLoop()
        guard self.shards.removeValue(forKey: shard) != nil, self.shards.isEmpty else { return }
        self.run(self.lifecycle.lastShardLeft())
    }

    /// With no client left, an on-demand feed (and any template instance) lets go of its upstream after
    /// `linger`.
    private func scheduleLinger(_ linger: TimeAmount) {
        self.lingerTask?.cancel()
        self.lingerTask = self.loop.assumeIsolated().scheduleTask(in: linger) { [weak self] in
            guard let self else { return }
            self.lingerTask = nil
            self.run(self.lifecycle.lingerEnded(isTemplateInstance: self.isTemplateInstance))
        }
    }

    var clientShardCount: Int { self.shards.count }

    // MARK: Status

    /// A point-in-time view for `/metrics` and `/api/feeds` (call on `loop`).
    func status() -> FeedStatus {
        FeedStatus(
            path: self.path,
            definition: self.definitionName,
            upstreamURL: self.upstream.url.description,
            upstreamState: UpstreamStateName(self.upstream.state),
            lastEventID: self.upstream.lastEventID,
            replayEvents: self.replay.count,
            replayBytes: self.replay.totalBytes,
            eventsIn: self.eventsIn,
            replaysServed: self.replaysServed,
            replayGaps: self.replayGaps,
            upstreamReconnects: self.upstream.reconnects,
            upstreamFailures: self.upstreamFailures,
            retired: false
        )
    }
}

extension Feed: UpstreamDelegate {
    func upstreamReceived(_ events: [ServerSentEvent]) {
        guard self.rebase.state != .idle else { return self.appendAndDeliver(events) }
        let output = self.rebase.received(events, holds: { self.replay.holds($0) }, newestHeld: self.replay.newestID)
        if let prepend = output.prepend {
            self.prepend(prepend.events, after: prepend.after)
        }
        if !output.append.isEmpty { self.appendAndDeliver(output.append) }
        // Only now: the clients that waited are answered from a ring that holds this whole batch.
        if output.ended { self.rebaseEnded() }
    }

    /// Older events in front of the ring. No client is sent them now: every client joined has a later
    /// sequence; the clients waiting for them get them from the ring.
    private func prepend(_ events: [ServerSentEvent], after base: String?) {
        let now = NIODeadline.now()
        let first = self.replay.firstSequence - Int64(events.count)
        let encoded = events.enumerated().map { offset, event in
            EncodedEvent(sequence: first + Int64(offset), event: event, receivedAt: now, allocator: self.allocator)
        }
        if self.replay.prepend(encoded, after: base, now: now) {
            self.eventsIn += encoded.count
        }
    }

    /// The first event with an id since the upstream was asked to resume after `unconfirmedSeed`. Ids are
    /// opaque in general, so only a provable break counts: both integers, and not the next one. (nginx and
    /// Mercure pass ids through and never judge them; a backend whose integer ids skip numbers per topic
    /// gets one gap notice per restart, which says no more than that the gateway cannot vouch for it.)
    private func checkResumed(_ events: [ServerSentEvent]) {
        guard let seed = self.unconfirmedSeed,
            let next = events.lazy.compactMap(\.id).first(where: { !$0.isEmpty })
        else { return }
        self.unconfirmedSeed = nil
        guard let seedNumber = Int64(seed), let nextNumber = Int64(next),
            seedNumber == .max || nextNumber != seedNumber + 1
        else { return }
        self.upstreamDidNotResume(after: seed, next: next)
    }

    /// The upstream did not resume after `seed` (it ignores Last-Event-ID, or lost its history, or started
    /// over): the clients streaming from the seed are told of the gap before `next` reaches them, and the
    /// ring no longer claims to start right after the seed, so a client holding it later gets the gap
    /// signals at join.
    private func upstreamDidNotResume(after seed: String, next: String) {
        self.replay.forgetStart()
        self.replayGaps += 1
        self.logger.debug(
            "the upstream did not resume after the seed id",
            metadata: ["seed": "\(seed)", "next": "\(next)"]
        )
        for link in self.shards.values {
            if link.loop === self.loop {
                link.shard.value.tellGap(after: seed, next: next)
            } else {
                let shard = link.shard
                link.postInOrder { shard.value.tellGap(after: seed, next: next) }
            }
        }
    }

    private func appendAndDeliver(_ events: [ServerSentEvent]) {
        self.checkResumed(events)
        let now = NIODeadline.now()
        var batch: [EncodedEvent] = []
        batch.reserveCapacity(events.count)
        for var event in events {
            if self.config.ids == .gateway, event.id == nil, event.data != nil {
                event.id = "\(self.idPrefix)\(self.replay.nextSequence)"
            }
            let encoded = EncodedEvent(
                sequence: self.replay.nextSequence,
                event: event,
                receivedAt: now,
                allocator: self.allocator
            )
            self.replay.append(encoded, now: now)
            batch.append(encoded)
            if let id = encoded.id, !id.isEmpty { self.lastDeliveredID = id }
        }
        self.eventsIn += batch.count
        // Hand the batch to the other loops first, then write to this loop's clients: the loops then
        // work in parallel instead of the others waiting for this loop's whole pass. Each other loop gets
        // its own copy of the bytes (see `EncodedEvent.copy`).
        // This loop may hold two shards for a moment: one that emptied (its detach is a task still queued
        // here) and the one a client joined since. Both get the batch, or that client would miss it.
        var local: ShardLink?
        var moreLocal: [ShardLink] = []
        for link in self.shards.values {
            if link.loop !== self.loop {
                link.post(batch.map { $0.copy(allocator: self.allocator) })
            } else if local == nil {
                local = link
            } else {
                moreLocal.append(link)
            }
        }
        local?.shard.value.deliver(batch)
        for link in moreLocal { link.shard.value.deliver(batch) }
        if !self.parked.isEmpty {
            let arrived = Set(events.compactMap(\.id))
            for join in self.parked where arrived.contains(join.resumeID) {
                self.releaseParked(join.id)
            }
        }
    }

    func upstreamStateChanged(_ state: UpstreamStateMachine.State, failure: UpstreamFailure?) {
        if failure != nil { self.upstreamFailures += 1 }
        var streaming = false
        if case .streaming = state { streaming = true }
        self.run(self.lifecycle.upstreamChanged(streaming: streaming, failure: failure))
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
