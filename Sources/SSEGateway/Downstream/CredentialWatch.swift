import NIOCore

import struct Foundation.Date

/// What a stream does while a credential may still end it (SPEC §6): warn `warn_before` ahead of `exp`
/// (at once when less is left), end at `exp`, and ask a forward-auth backend again every `recheck`. A
/// refusal on re-check ends the stream as an expiry does; a backend that cannot answer leaves it running
/// (the next re-check asks again). The session says what warning and ending mean for it (`StreamSession`:
/// one feed; `MultiSession`: the earliest `exp` among its feeds, and a re-check per feed). All calls happen
/// on `loop`; the session hears nothing after `cancel()`.
final class CredentialWatch {
    private let loop: EventLoop
    private let gateway: GatewayContext
    /// Weak: the session owns the watch; the watch's timers keep the watch, not the session.
    private weak var session: (any CredentialWatcher)?
    /// The timers not fired yet, by a number of their own: each removes itself when it fires, so a stream
    /// that lives for days with a re-check a minute holds one timer, not one per re-check so far.
    private var timers: [Int: Scheduled<Void>] = [:]
    private var nextTimer = 0
    private var cancelled = false

    init(for session: any CredentialWatcher, loop: EventLoop, gateway: GatewayContext) {
        self.session = session
        self.loop = loop
        self.gateway = gateway
    }

    /// The warning `warnBefore` ahead of `expiresAt`, and the end then.
    func expire(at expiresAt: Date, warnBefore: TimeAmount) {
        let left = TimeAmount.nanoseconds(Int64(max(0, expiresAt.timeIntervalSinceNow) * 1e9))
        self.schedule(in: max(.zero, left - warnBefore)) { $0.session?.credentialExpiring(at: expiresAt) }
        self.schedule(in: left) { $0.session?.credentialExpired(.authExpired) }
    }

    /// Asks the feed's authorizer again every `interval` with `request` (forward auth's `recheck`).
    func recheck(every interval: TimeAmount, _ request: AuthRequest, feed: FeedConfig) {
        self.schedule(in: interval) { watch in
            guard let authorizer = watch.gateway.access.authorizer(forFeed: feed.name) else { return }
            let decided = authorizer.decision(for: request, feedTemplate: feed.path, on: watch.loop)
            // Weak: a stream that ended while the backend answers frees its watch at once.
            decided.assumeIsolated().whenSuccess { [weak watch] decision in
                guard let watch, !watch.cancelled else { return }
                switch decision {
                case .refused:
                    watch.gateway.access.outcomes.record(feed: feed.name, decision: decision)
                    watch.session?.credentialExpired(.authRevoked)
                case .allowed, .unavailable:
                    watch.recheck(every: interval, request, feed: feed)
                }
            }
        }
    }

    func cancel() {
        self.cancelled = true
        for timer in self.timers.values { timer.cancel() }
        self.timers.removeAll()
    }

    /// Timers armed and not fired or cancelled yet.
    var pendingTimers: Int { self.timers.count }

    private func schedule(in delay: TimeAmount, _ body: @escaping (CredentialWatch) -> Void) {
        guard !self.cancelled else { return }
        let key = self.nextTimer
        self.nextTimer += 1
        self.timers[key] = self.loop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            guard let self, !self.cancelled else { return }
            self.timers.removeValue(forKey: key)
            body(self)
        }
    }
}

/// A session whose stream a `CredentialWatch` may warn and end.
protocol CredentialWatcher: AnyObject {
    /// Time to send `auth-expiring` (the credential runs out at `expiresAt`).
    func credentialExpiring(at expiresAt: Date)
    /// The credential ran out (`.authExpired`), or a re-check refused it (`.authRevoked`): the stream ends
    /// with `auth-expired`; `end` is what the access log says.
    func credentialExpired(_ end: AccessLogEnd)
}
