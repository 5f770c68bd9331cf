import AsyncHTTPClient
import NIOConcurrencyHelpers
import NIOCore

/// `auth: forward`: asks a backend whether a request may subscribe, as nginx `auth_request` does (see
/// ``ForwardAuthCall`` for what is sent and ``ForwardAuthAnswer`` for what the answers mean), built to survive
/// a reconnect storm:
///
/// - **Cache.** Allow and refuse answers are kept per (credential, path) for `ttl`, at most `maxEntries`
///   (``AnswerCache``). "No answer" is never cached, so a recovered backend is asked at once.
/// - **Coalescing.** Concurrent misses for one key share one call (``CoalescedLookup``).
/// - **Admission.** At most `maxConcurrent` calls in flight; a further miss waits up to `queueTimeout` in
///   FIFO order (``CallAdmission``), then gets `.unavailable(reason: "forward_saturated")`.
///
/// Each flight runs in its own task, so a client that disconnects (cancelling its `authorize`) neither cancels
/// the call that other clients wait on nor loses an answer the cache could keep. A flight ends within
/// `queueTimeout + timeout`, whatever the backend does, and wakes every waiter: nothing outlives that.
///
/// It knows no feed (each call brings its template), so feeds with the same forward settings can share one
/// authorizer, and with it one cache and one bound on calls to the backend.
///
/// The `HTTPClient` is the caller's (its pool is shared with other short calls); shut it down after the last
/// `authorize` returns. ``clientConfiguration(connections:connectTimeout:)`` says how to configure it.
public final class ForwardAuthorizer: FeedAuthorizer {
    /// What the lock guards: the cache with its flights, the call slots, and the counters.
    private struct State {
        var lookup: CoalescedLookup<ForwardAuthKey, ForwardAuthAnswer, CheckedContinuation<ForwardAuthOutcome, Never>>
        var admission: CallAdmission<CheckedContinuation<Bool, Never>>
        var stats = ForwardAuthStats()
    }

    private let config: ForwardAuthConfig
    private let call: ForwardAuthCall
    /// Runs the queue timers.
    private let eventLoopGroup: any EventLoopGroup
    private let state: NIOLockedValueBox<State>

    /// - Parameters:
    ///   - url: the backend (`config.url`, which the config loader requires for `auth: forward`).
    ///   - config: ttl, bounds, timeouts, `recheck` and the grant header.
    ///   - httpClient: pooled keep-alive connections to the backend; owned and shut down by the caller.
    public init(url: UpstreamURL, config: ForwardAuthConfig, httpClient: HTTPClient) {
        self.config = config
        self.call = ForwardAuthCall(
            url: url,
            timeout: config.timeout,
            grantHeader: config.grantHeader,
            client: httpClient
        )
        self.eventLoopGroup = httpClient.eventLoopGroup
        self.state = NIOLockedValueBox(
            State(
                lookup: CoalescedLookup(ttl: config.ttl, maxEntries: config.maxEntries),
                // The loader rejects 0; kept out of a programmatic config too, where it would let no call through.
                admission: CallAdmission(maxConcurrent: max(config.maxConcurrent, 1))
            )
        )
    }

    public func authorize(_ request: AuthRequest, feedTemplate: PathTemplate) async -> AuthDecision {
        let key = ForwardAuthKey(headers: request.headers, path: request.path)
        switch await self.outcome(for: key, request: request) {
        case .answer(let answer):
            return answer.decision(path: request.path, feedTemplate: feedTemplate, recheck: self.config.recheck)
        case .unavailable(let reason):
            return .unavailable(reason: reason)
        }
    }

    /// The counters now, and how much is cached, queued and in flight.
    public var stats: ForwardAuthStats {
        self.state.withLockedValue { state in
            var stats = state.stats
            stats.inFlight = state.admission.inFlight
            stats.waiting = state.admission.waitingCount
            stats.flights = state.lookup.flightCount
            stats.cachedAnswers = state.lookup.cache.count
            return stats
        }
    }

    private func outcome(for key: ForwardAuthKey, request: AuthRequest) async -> ForwardAuthOutcome {
        let now = NIODeadline.now()
        let hit = self.state.withLockedValue { state in
            let answer = state.lookup.cached(key, now: now)
            if answer != nil { state.stats.cacheHits += 1 }
            return answer
        }
        if let hit { return .answer(hit) }
        return await withCheckedContinuation { continuation in
            let action = self.state.withLockedValue { state in
                let action = state.lookup.join(key, waiter: continuation, now: now)
                switch action {
                case .cached: state.stats.cacheHits += 1
                case .follow: state.stats.coalesced += 1
                case .lead: break
                }
                return action
            }
            switch action {
            case .cached(let answer):
                continuation.resume(returning: .answer(answer))
            case .lead:
                // Not a child task: the flight must not end with this caller (see the type's comment).
                Task { await self.fly(key, request: request) }
            case .follow:
                break
            }
        }
    }

    /// One flight: wait for a slot, call, cache, wake everyone who joined.
    private func fly(_ key: ForwardAuthKey, request: AuthRequest) async {
        let outcome: ForwardAuthOutcome
        if await self.admit() {
            self.state.withLockedValue { $0.stats.backendCalls += 1 }
            outcome = await self.call.perform(request)
            let next = self.state.withLockedValue { $0.admission.release() }
            next?.resume(returning: true)
        } else {
            outcome = .saturated
        }
        let now = NIODeadline.now()
        let waiters = self.state.withLockedValue { $0.lookup.land(key, answer: outcome.answer, now: now) }
        for waiter in waiters { waiter.resume(returning: outcome) }
    }

    /// Takes a call slot, waiting up to `queueTimeout` for one; false when none came free in time.
    private func admit() async -> Bool {
        var timer: Scheduled<Void>?
        let admitted = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            switch self.state.withLockedValue({ $0.admission.acquire(continuation) }) {
            case .run:
                continuation.resume(returning: true)
            case .wait(let id):
                timer = self.eventLoopGroup.any().scheduleTask(in: self.config.queueTimeout) {
                    self.queueTimeoutFired(id)
                }
            }
        }
        // Granted before the timer fired: the timer is now a no-op, cancel it so nothing outlives the flight.
        timer?.cancel()
        return admitted
    }

    private func queueTimeoutFired(_ id: UInt64) {
        let waiter = self.state.withLockedValue { state in
            let waiter = state.admission.expire(id)
            if waiter != nil { state.stats.saturated += 1 }
            return waiter
        }
        waiter?.resume(returning: false)
    }
}
