import AsyncHTTPClient
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The authorizers of the feeds that demand credentials, by feed name, and what they share: the HTTP client
/// for JWKS URLs and forward auth, and the outcome counters.
///
/// Built when the gateway starts and again on every reload (`install`), off the event loops: building reads
/// key files and may fetch a JWKS. Requests look their feed's authorizer up once per stream request.
public final class AccessControl: Sendable {
    private let authorizers = NIOLockedValueBox<[String: any FeedAuthorizer]>([:])
    /// The forward-auth backends in force, each with its own authorizer (cache, call slots) and HTTP client
    /// (a pool sized to its `max_concurrent`). A reload that keeps a backend's settings keeps its cache.
    private let forwardBackends = NIOLockedValueBox<[ForwardBackend]>([])
    /// The JWKS refresh loops of the verifiers in force; cancelled when a reload replaces them.
    private let refreshTasks = NIOLockedValueBox<[Task<Void, Never>]>([])
    /// The modes in force, by feed name (what `/api/feeds` shows).
    private let modes = NIOLockedValueBox<[String: AuthMode]>([:])
    let outcomes = AuthOutcomeCounters()
    /// Made on first use: most configs never need one. On AsyncHTTPClient's singleton event loops, not the
    /// gateway's: a call or fetch still running when the gateway's loops shut down (a task that outlived a
    /// test, or a process exiting mid-call) would otherwise make a promise on a dead loop, which SwiftNIO
    /// treats as a fatal leak.
    private let httpClientBox = NIOLockedValueBox<HTTPClient?>(nil)
    private let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    /// The client JWKS fetches and forward-auth calls share (pooled connections per backend).
    var httpClient: HTTPClient {
        self.httpClientBox.withLockedValue { client in
            if let client { return client }
            var configuration = HTTPClient.Configuration()
            // An identity provider or auth backend that is down should cost a second, not the whole fetch
            // timeout: AsyncHTTPClient retries a refused connect until its connect timeout.
            configuration.timeout.connect = .seconds(1)
            let made = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            client = made
            return made
        }
    }

    /// The authorizer of the feed named `name`, or nil when it lets everyone in (`auth: none`).
    func authorizer(forFeed name: String) -> (any FeedAuthorizer)? {
        self.authorizers.withLockedValue { $0[name] }
    }

    /// The auth mode of the feed named `name`.
    public func mode(ofFeed name: String) -> AuthMode {
        self.modes.withLockedValue { $0[name] ?? .none }
    }

    /// Builds the authorizers of `feeds` and puts them in force. A feed whose authorizer cannot be built
    /// (a key file that no longer parses) keeps the one it had, if any, and is reported; with none to keep,
    /// the feed refuses every request (`unavailable`) rather than opening up.
    @discardableResult
    public func install(_ feeds: [FeedConfig]) async -> [String] {
        var built: [String: any FeedAuthorizer] = [:]
        var modes: [String: AuthMode] = [:]
        var errors: [String] = []
        // Feeds that inherit the same `jwt:` from `defaults:` share one verifier: one JWKS fetch, one refresh.
        var verifiers: [JWTSettings: TokenVerifier] = [:]
        let previousBackends = self.forwardBackends.withLockedValue { $0 }
        var backends: [ForwardBackend] = []
        for feed in feeds {
            let auth = feed.settings.auth
            modes[feed.name] = auth.mode
            if auth.mode == .forward, let url = auth.forward.url {
                let backend =
                    backends.first { $0.config == auth.forward }
                    ?? previousBackends.first { $0.config == auth.forward }
                    ?? ForwardBackend(url: url, config: auth.forward)
                if !backends.contains(where: { $0 === backend }) { backends.append(backend) }
                built[feed.name] = backend.authorizer
                continue
            }
            do {
                if let authorizer = try await self.makeAuthorizer(auth, verifiers: &verifiers) {
                    built[feed.name] = authorizer
                }
            } catch {
                errors.append("feed '\(feed.name)': \(error)")
                built[feed.name] = self.authorizer(forFeed: feed.name) ?? UnavailableAuthorizer()
            }
        }
        let refreshes = verifiers.values.map { verifier in Task { await verifier.runRefresh() } }
        let replaced = self.refreshTasks.withLockedValue { tasks in
            defer { tasks = refreshes }
            return tasks
        }
        for task in replaced { task.cancel() }
        self.authorizers.withLockedValue { $0 = built }
        self.modes.withLockedValue { $0 = modes }
        self.forwardBackends.withLockedValue { $0 = backends }
        for unused in previousBackends where !backends.contains(where: { $0 === unused }) {
            // Calls still under way on it fail (`.unavailable`: a 503, never an allow); a stream's re-check
            // that meets it asks again at its next re-check.
            Task { await unused.shutdown() }
        }
        return errors
    }

    private func makeAuthorizer(
        _ auth: AuthConfig,
        verifiers: inout [JWTSettings: TokenVerifier]
    ) async throws -> (any FeedAuthorizer)? {
        switch auth.mode {
        case .none:
            return nil
        case .jwt, .optional:
            let verifier: TokenVerifier
            if let shared = verifiers[auth.jwt] {
                verifier = shared
            } else {
                verifier = try await TokenVerifier(
                    settings: auth.jwt,
                    httpClient: auth.jwt.jwksURL == nil ? nil : self.httpClient,
                    logger: self.logger
                )
                verifiers[auth.jwt] = verifier
            }
            return JWTFeedAuthorizer(
                verifier: verifier,
                settings: auth.jwt,
                anonymousAllowed: auth.mode == .optional
            )
        case .forward:
            // Without a URL the config was refused; kept closed rather than open should one ever get here.
            return UnavailableAuthorizer()
        }
    }

    /// Stops the HTTP client. Called once, when the gateway stops.
    public func shutdown() async {
        for task in self.refreshTasks.withLockedValue({ $0 }) {
            task.cancel()
            await task.value
        }
        for backend in self.forwardBackends.withLockedValue({ $0 }) { await backend.shutdown() }
        let client = self.httpClientBox.withLockedValue { client in
            defer { client = nil }
            return client
        }
        try? await client?.shutdown()
    }

    /// Each forward-auth backend's URL (credentials and query values hidden) and counters, for `/metrics`.
    var forwardStats: [(url: String, stats: ForwardAuthStats)] {
        self.forwardBackends.withLockedValue { $0 }.map { ($0.url.description, $0.authorizer.stats) }
    }

    /// Logs one line of the refusals and failures since the last call, if there were any.
    func logSummary(interval: TimeAmount) {
        let counts = self.outcomes.takeSummary()
        guard !counts.isEmpty else { return }
        self.logger.notice(
            "requests refused by access control",
            metadata: [
                "counts": "\(AuthOutcomeCounters.describe(counts))",
                "interval": "\(interval.nanoseconds / 1_000_000_000)s",
            ]
        )
    }
}

/// Refuses every request with 503: what a feed gets when its authorizer cannot be built, so that a broken
/// key file closes the feed instead of opening it.
struct UnavailableAuthorizer: FeedAuthorizer {
    func authorize(_ request: AuthRequest, feedTemplate: PathTemplate) async -> AuthDecision {
        .unavailable(reason: "auth_not_configured")
    }
}
