import NIOCore

/// The lifecycle of one feed, as a value type without I/O: when it holds its upstream, when it lets go of
/// it, when clients wait, and when it is gone. `Feed` owns it on the feed's loop and only carries out the
/// actions; which events a client is sent (the replay, rebases) stays with `Feed` and `ReplayBuffer`.
///
/// ```
/// connecting(held) ──first response──▶ streaming ◀──join── lingering ──linger over──▶ idle / closed
///   (template instance)  └─404/410─▶ closed    └──last client left──▶ ┘        (plain / template)
/// ```
///
/// - `connecting`: a new template instance answers its clients only once its upstream's first response is
///   known (or `connect_timeout` passed): a value the backend says does not exist (404, 410) gets that
///   status, and the instance closes at once (no linger, no retry).
/// - `streaming`: the feed holds its upstream: clients are attached, or the feed is `connect: always`.
/// - `lingering`: an on-demand feed or a template instance without clients; the linger timer runs.
/// - `idle`: a plain on-demand feed without its upstream (before its first client, after lingering).
/// - `closed`: removed by a reload, shut down, or a template instance that lingered out or was refused.
///
/// Joins parked for a failover id (or a rebase) are tracked here by `JoinID`: whoever answers one first
/// (its id arrived, its wait ended, or the feed closed) answers it; a later answer finds it gone.
struct FeedLifecycle {
    /// One client's request to join, from `join` to its answer.
    struct JoinID: Hashable, Sendable, CustomStringConvertible {
        let value: Int

        var description: String { "join \(self.value)" }
    }

    enum State: Equatable, Sendable {
        case connecting(held: [JoinID])
        case streaming
        case lingering
        case idle
        case closed
    }

    /// How the feed holds its upstream; a reload can change it.
    struct Mode: Equatable, Sendable {
        /// `connect: always` on a plain feed: the upstream runs with or without clients.
        var alwaysConnected: Bool
        /// How long a feed without clients keeps its upstream (when not `alwaysConnected`).
        var linger: TimeAmount

        init(connect: ConnectMode, isTemplateInstance: Bool, linger: TimeAmount) {
            // Template instances always linger out (whatever `connect` says), so that values nobody
            // watches any more never hold an upstream or a `max_feeds` slot.
            self.alwaysConnected = connect == .always && !isTemplateInstance
            self.linger = linger
        }
    }

    /// What a join does next, after the upstream is started.
    enum JoinNext: Equatable, Sendable {
        /// Wait for the first upstream response; arm the `connect_timeout` timer if `armTimeout` (the
        /// first held join).
        case hold(armTimeout: Bool)
        /// Answer from the replay ring now (which may park it: `parked`).
        case resolve
    }

    /// What a held or parked join is answered when the feed closes.
    enum CloseAnswer: Equatable, Sendable {
        case closed
        case upstreamRefused(status: Int)
    }

    /// Cancel the timers, answer `held` with `heldAnswer` and `parked` with `.closed`, stop the upstream,
    /// and let the registry forget the feed if `forget` (a template instance that closed by itself).
    struct Closing: Equatable, Sendable {
        var held: [JoinID]
        var heldAnswer: CloseAnswer
        var parked: [JoinID]
        var forget: Bool
    }

    /// A reload changed the definition (the feed applies the new config first).
    struct Reload: Equatable, Sendable {
        /// Replace the upstream client (URL or upstream settings changed), keeping its last event id.
        var swapUpstream: Bool
        /// Start the new client: the old one was running.
        var startSwapped: Bool
        var cancelLinger: Bool
        /// Start the upstream (it is held regardless of clients now).
        var startUpstream: Bool
        /// (Re)arm the linger timer for this long: no clients, and the feed no longer holds its upstream.
        var scheduleLinger: TimeAmount?
    }

    enum Action: Equatable, Sendable {
        case none
        case startUpstream
        case stopUpstream
        /// Attach the client's shard, cancel the linger timer if `cancelLinger`, start the upstream if
        /// `startUpstream` (after seeding its first `Last-Event-ID`), then `next`.
        case join(JoinID, cancelLinger: Bool, startUpstream: Bool, next: JoinNext)
        /// The feed is closed: the client resolves the path again.
        case replyClosed
        /// (Re)arm the linger timer.
        case scheduleLinger(TimeAmount)
        /// Cancel the first-response timer and answer these held joins from the replay ring, in order.
        case answerHeld([JoinID])
        /// Answer a parked join from the replay ring now.
        case answerParked(JoinID)
        case close(Closing)
        case reload(Reload)
    }

    private(set) var state: State
    private(set) var mode: Mode
    /// Joins waiting for an id to arrive or for a rebase to end, in the order they parked.
    private(set) var parked: [JoinID] = []
    private var joinsMade = 0

    init(mode: Mode, isTemplateInstance: Bool) {
        self.mode = mode
        self.state = isTemplateInstance ? .connecting(held: []) : .idle
    }

    var isClosed: Bool { self.state == .closed }

    /// The feed was made (plain feeds only): a `connect: always` feed holds its upstream from now on.
    mutating func start() -> Action {
        switch self.state {
        case .idle where self.mode.alwaysConnected:
            self.state = .streaming
            return .startUpstream
        case .idle, .streaming, .lingering, .connecting, .closed:
            // On demand: the first client starts it. Closed: a shutdown overtook the start.
            return .none
        }
    }

    /// A shard asks to join on behalf of a new client.
    mutating func join() -> Action {
        let startUpstream = !self.mode.alwaysConnected
        switch self.state {
        case .closed:
            return .replyClosed
        case .connecting(var held):
            let id = self.nextJoin()
            held.append(id)
            self.state = .connecting(held: held)
            return .join(id, cancelLinger: false, startUpstream: true, next: .hold(armTimeout: held.count == 1))
        case .streaming:
            return .join(self.nextJoin(), cancelLinger: false, startUpstream: startUpstream, next: .resolve)
        case .lingering:
            self.state = .streaming
            return .join(self.nextJoin(), cancelLinger: true, startUpstream: startUpstream, next: .resolve)
        case .idle:
            self.state = .streaming
            return .join(self.nextJoin(), cancelLinger: false, startUpstream: startUpstream, next: .resolve)
        }
    }

    private mutating func nextJoin() -> JoinID {
        self.joinsMade += 1
        return JoinID(value: self.joinsMade)
    }

    /// The upstream reported a state change (`failure` when a connection failed or ended).
    mutating func upstreamChanged(streaming: Bool, failure: UpstreamFailure?) -> Action {
        guard case .connecting = self.state else { return .none }
        switch failure {
        case .status(let code) where code == 404 || code == 410:
            return self.firstResponse(refusedWith: code)
        case .some:
            return self.firstResponse(refusedWith: nil)
        case nil:
            return streaming ? self.firstResponse(refusedWith: nil) : .none
        }
    }

    /// The upstream's first response took `connect_timeout`: the clients get today's stream (200,
    /// keepalives) while it retries.
    mutating func firstResponseTimedOut() -> Action {
        guard case .connecting = self.state else { return .none }
        return self.firstResponse(refusedWith: nil)
    }

    private mutating func firstResponse(refusedWith status: Int?) -> Action {
        guard case .connecting(let held) = self.state else {
            preconditionFailure("invalid transition \(self.state) on firstResponse(\(String(describing: status)))")
        }
        if let status {
            self.state = .closed
            return .close(Closing(held: held, heldAnswer: .upstreamRefused(status: status), parked: [], forget: true))
        }
        self.state = .streaming
        return .answerHeld(held)
    }

    /// A resolved join waits for its id to arrive or for a rebase to end.
    mutating func parked(_ join: JoinID) {
        guard case .streaming = self.state else {
            // Joins are resolved only while streaming, and a join's shard stays attached until answered.
            preconditionFailure("invalid transition \(self.state) on parked(\(join))")
        }
        self.parked.append(join)
    }

    /// A parked join's id arrived, its wait ended, or the rebase it waited for ended.
    mutating func releaseParked(_ join: JoinID) -> Action {
        guard let index = self.parked.firstIndex(of: join) else { return .none }
        self.parked.remove(at: index)
        return .answerParked(join)
    }

    /// The last attached shard left.
    mutating func lastShardLeft() -> Action {
        switch self.state {
        case .streaming:
            guard !self.mode.alwaysConnected else { return .none }
            self.state = .lingering
            return .scheduleLinger(self.mode.linger)
        case .closed:
            return .none
        case .connecting, .lingering, .idle:
            // Connecting: every attached shard waits for a held join. Lingering, idle: none is attached.
            preconditionFailure("invalid transition \(self.state) on lastShardLeft")
        }
    }

    /// The linger timer fired: a template instance closes (and is forgotten), a plain feed stops its upstream.
    mutating func lingerEnded(isTemplateInstance: Bool) -> Action {
        switch self.state {
        case .lingering:
            guard isTemplateInstance else {
                self.state = .idle
                return .stopUpstream
            }
            return self.close(forget: true)
        case .closed, .streaming, .idle:
            // A join, a reload or a close cancelled the timer, but a timer already due in the same loop tick
            // still runs (NIO's cancel does not reach a dequeued task): a late timer, nothing to do.
            return .none
        case .connecting:
            // Only `lastShardLeft` and a reload arm the timer, and a feed never goes back to connecting.
            preconditionFailure("invalid transition \(self.state) on lingerEnded")
        }
    }

    /// A reload changed the feed's definition to `mode`. `upstreamChanged`: the URL or upstream settings
    /// differ; `upstreamRunning`: the current client is connecting, streaming or backing off.
    mutating func reload(to mode: Mode, upstreamChanged: Bool, upstreamRunning: Bool, hasClients: Bool) -> Action {
        guard !self.isClosed else { return .none }
        self.mode = mode
        var reload = Reload(
            swapUpstream: upstreamChanged,
            startSwapped: upstreamChanged && upstreamRunning,
            cancelLinger: false,
            startUpstream: false,
            scheduleLinger: nil
        )
        switch self.state {
        case .connecting, .closed:
            break
        case .streaming, .lingering, .idle:
            if mode.alwaysConnected {
                reload.startUpstream = true
                reload.cancelLinger = self.state == .lingering
                self.state = .streaming
            } else if !hasClients, self.state != .idle {
                // No longer held regardless of clients (or the linger changed): linger from now.
                reload.scheduleLinger = mode.linger
                self.state = .lingering
            }
        }
        return .reload(reload)
    }

    /// Shutdown or removal by a reload.
    mutating func close() -> Action {
        guard !self.isClosed else { return .none }
        return self.close(forget: false)
    }

    private mutating func close(forget: Bool) -> Action {
        var held: [JoinID] = []
        if case .connecting(let waiting) = self.state { held = waiting }
        let parked = self.parked
        self.parked.removeAll()
        self.state = .closed
        return .close(Closing(held: held, heldAnswer: .closed, parked: parked, forget: forget))
    }
}
