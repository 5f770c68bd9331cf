import NIOCore

/// Decides whether a request may subscribe to a feed. One per feed definition with `auth:` other than `none`,
/// built when the config is loaded (or reloaded); called once per stream request, and again at a grant's
/// `recheckAfter`. Never called on the hot path of events.
public protocol FeedAuthorizer: Sendable {
    /// The decision for `request` on a feed whose path template is `feedTemplate` (grants may name template
    /// values). May suspend (a JWKS refetch, a forward-auth call); never throws: failures are decisions.
    func authorize(_ request: AuthRequest, feedTemplate: PathTemplate) async -> AuthDecision
}

extension FeedAuthorizer {
    /// The decision for `request`, asked off the event loop (an authorizer may call out) and delivered on `loop`,
    /// where the session that asked lives.
    func decision(
        for request: AuthRequest,
        feedTemplate: PathTemplate,
        on loop: EventLoop
    ) -> EventLoopFuture<AuthDecision> {
        let promise = loop.makePromise(of: AuthDecision.self)
        promise.completeWithTask { await self.authorize(request, feedTemplate: feedTemplate) }
        return promise.futureResult
    }
}
