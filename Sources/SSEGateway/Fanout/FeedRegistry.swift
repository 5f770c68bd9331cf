import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Maps request paths to feeds. Plain paths map to feeds made when the registry is (before any
/// listener is bound, so a configured path never answers 404); each distinct value of a template path
/// gets its own feed (and upstream connection) when a client subscribes to it, up to `max_feeds`.
/// Looked up once per request (never per event), so a lock is fine here.
public final class FeedRegistry: Sendable {
    /// Which feed a request path names. Looking up never opens a template instance: only a stream
    /// that has been admitted does (`acquire`), so HEAD, OPTIONS, 405 and refused requests cost nothing.
    public struct Target: Sendable {
        public var definition: FeedConfig
        /// The canonical concrete path (one spelling per template value).
        public var key: String
        public var values: [String: String]
    }

    public enum Acquisition {
        case feed(Feed)
        /// The template already has `max_feeds` distinct values open.
        case tooManyFeeds
        /// New template instances are opened faster than `limits.max_new_feeds_per_second` (gateway-wide,
        /// or per client address).
        case tooManyNewFeeds(perAddress: Bool)
        /// The feed is gone (shutdown).
        case unavailable
    }

    private struct State {
        /// The definitions in force: plain paths by path, templates in config order.
        var plain: [String: FeedConfig] = [:]
        var templates: [FeedConfig] = []
        /// Upstream TLS contexts, by feed definition name.
        var tlsContexts: [String: UpstreamTLSContext] = [:]
        var instances: [String: Feed] = [:]
        var openPerTemplate: [String: Int] = [:]
        /// Final counters of closed template instances, per definition.
        var retired: [String: FeedStatus] = [:]
        var newFeeds = NewFeedLimiter()
    }

    /// What a reload did to the feeds.
    public struct ReloadSummary: Sendable, Equatable, CustomStringConvertible {
        public var added: [String] = []
        public var removed: [String] = []
        public var changed: [String] = []
        public var unchanged = 0

        public var description: String {
            "added \(self.added), removed \(self.removed), changed \(self.changed), unchanged \(self.unchanged)"
        }
    }

    private let group: EventLoopGroup
    private let idPrefix: String
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(feeds: [FeedConfig], group: EventLoopGroup, idPrefix: String, logger: Logger) {
        self.group = group
        self.idPrefix = idPrefix
        self.logger = logger
        self.state.withLockedValue { state in
            Self.define(feeds, in: &state, logger: logger)
            for (path, config) in state.plain {
                state.instances[path] = self.makeFeed(
                    path: path,
                    config: config,
                    values: [:],
                    tlsContext: state.tlsContexts[config.name]
                )
            }
        }
    }

    /// Sets the definitions (and their upstream TLS contexts, built once per definition).
    private static func define(_ feeds: [FeedConfig], in state: inout State, logger: Logger) {
        state.plain = [:]
        state.templates = []
        var contexts: [String: UpstreamTLSContext] = [:]
        for feed in feeds {
            if feed.path.isTemplate { state.templates.append(feed) } else { state.plain[feed.path.description] = feed }
            guard feed.upstreamURL.isTLS else { continue }
            let context = UpstreamTLSContext(feed.settings.upstream.tls)
            contexts[feed.name] = context
            if let failure = context.failure {
                logger.error("upstream TLS setup failed", metadata: ["feed": "\(feed.name)", "error": "\(failure)"])
            }
            if feed.settings.upstream.tls?.verify == false {
                logger.warning("upstream TLS verification is off", metadata: ["feed": "\(feed.name)"])
            }
        }
        state.tlsContexts = contexts
    }

    /// Starts the upstreams of plain feeds with `connect: always`.
    func startPlainFeeds() {
        for feed in self.feeds where !feed.isTemplateInstance {
            feed.loop.execute { feed.start() }
        }
    }

    /// The feed definition a request path (without query) names, or nil (404).
    public func lookup(path: Substring) -> Target? {
        self.state.withLockedValue { state in
            if let config = state.plain[String(path)] {
                return Target(definition: config, key: String(path), values: [:])
            }
            for template in state.templates {
                guard let values = template.path.match(path) else { continue }
                return Target(definition: template, key: template.path.render(values), values: values)
            }
            return nil
        }
    }

    /// A reload: feeds whose definition is unchanged are left alone (clients, upstream, replay buffer);
    /// changed ones are updated in place (a changed upstream reconnects with its last id); removed ones
    /// send their clients `retry:` and close; new plain feeds start. Template instances follow their
    /// template. Nothing here blocks an event loop: each feed is changed on its own loop.
    func apply(_ feeds: [FeedConfig]) -> ReloadSummary {
        var summary = ReloadSummary()
        var toStart: [Feed] = []
        var toUpdate: [(Feed, FeedConfig, UpstreamTLSContext?)] = []
        var toRemove: [Feed] = []
        self.state.withLockedValue { state in
            let oldPlain = state.plain
            let oldTemplates = Dictionary(
                state.templates.map { ($0.path.description, $0) },
                uniquingKeysWith: { first, _ in first }
            )
            Self.define(feeds, in: &state, logger: self.logger)
            let newTemplates = Dictionary(
                state.templates.map { ($0.path.description, $0) },
                uniquingKeysWith: { first, _ in first }
            )
            for (key, feed) in state.instances {
                let definition: FeedConfig?
                let previous: FeedConfig?
                if feed.isTemplateInstance {
                    definition = newTemplates[feed.definitionPath]
                    previous = oldTemplates[feed.definitionPath]
                } else {
                    definition = state.plain[key]
                    previous = oldPlain[key]
                }
                guard let definition else {
                    toRemove.append(feed)
                    state.instances.removeValue(forKey: key)
                    continue
                }
                if definition != previous {
                    toUpdate.append((feed, definition, state.tlsContexts[definition.name]))
                }
            }
            state.openPerTemplate = [:]
            for feed in state.instances.values where feed.isTemplateInstance {
                if let definition = newTemplates[feed.definitionPath] {
                    state.openPerTemplate[definition.name, default: 0] += 1
                }
            }
            for (path, config) in state.plain where state.instances[path] == nil {
                let feed = self.makeFeed(
                    path: path,
                    config: config,
                    values: [:],
                    tlsContext: state.tlsContexts[config.name]
                )
                state.instances[path] = feed
                toStart.append(feed)
            }
            let oldKeys = Set(oldPlain.keys).union(oldTemplates.keys)
            let newKeys = Set(state.plain.keys).union(newTemplates.keys)
            summary.added = newKeys.subtracting(oldKeys).sorted()
            summary.removed = oldKeys.subtracting(newKeys).sorted()
            summary.changed = newKeys.intersection(oldKeys).filter { key in
                (state.plain[key] ?? newTemplates[key]) != (oldPlain[key] ?? oldTemplates[key])
            }.sorted()
            summary.unchanged = newKeys.intersection(oldKeys).count - summary.changed.count
        }
        for feed in toRemove { feed.loop.execute { feed.remove() } }
        for (feed, config, tls) in toUpdate { feed.loop.execute { feed.update(to: config, tlsContext: tls) } }
        for feed in toStart { feed.loop.execute { feed.start() } }
        return summary
    }

    /// The open feed for a target, opening a template instance if needed: within `max_feeds` and the
    /// new-instance rates (`clientAddress` is the address the per-address rate counts against).
    func acquire(
        _ target: Target,
        clientAddress: String? = nil,
        rates: NewFeedLimiter.Rates = LimitsConfig().newFeedRates
    ) -> Acquisition {
        self.state.withLockedValue { state -> Acquisition in
            if let feed = state.instances[target.key] { return .feed(feed) }
            // The definition in force now (a reload may have changed or removed it since the lookup).
            guard target.definition.path.isTemplate,
                let definition = state.templates.first(where: { $0.path == target.definition.path })
            else { return .unavailable }
            var target = target
            target.definition = definition
            let open = state.openPerTemplate[target.definition.name, default: 0]
            guard open < target.definition.maxFeeds else { return .tooManyFeeds }
            switch state.newFeeds.admit(address: clientAddress, rates: rates, now: NIODeadline.now()) {
            case .allowed: break
            case .overGateway: return .tooManyNewFeeds(perAddress: false)
            case .overAddress: return .tooManyNewFeeds(perAddress: true)
            }
            let feed = self.makeFeed(
                path: target.key,
                config: target.definition,
                values: target.values,
                tlsContext: state.tlsContexts[target.definition.name]
            )
            state.instances[target.key] = feed
            state.openPerTemplate[target.definition.name] = open + 1
            return .feed(feed)
        }
    }

    private func makeFeed(
        path: String,
        config: FeedConfig,
        values: [String: String],
        tlsContext: UpstreamTLSContext?
    ) -> Feed {
        let feed = Feed(
            path: path,
            config: config,
            values: values,
            loop: self.group.next(),
            tlsContext: tlsContext,
            idPrefix: self.idPrefix,
            logger: self.logger
        )
        feed.onClose = { [weak self] feed in self?.forget(feed) }
        return feed
    }

    /// Called on the feed's loop when it closed after lingering.
    private func forget(_ feed: Feed) {
        var final = feed.status()
        final.retired = true
        final.replayEvents = 0
        final.replayBytes = 0
        self.state.withLockedValue { state in
            if var sum = state.retired[final.definition] {
                sum.accumulate(final)
                state.retired[final.definition] = sum
            } else {
                final.path = final.definition
                state.retired[final.definition] = final
            }
            guard state.instances[feed.path] === feed else { return }
            state.instances.removeValue(forKey: feed.path)
            if feed.isTemplateInstance {
                state.openPerTemplate[feed.config.name, default: 1] -= 1
            }
        }
    }

    /// The open feeds and the totals of closed template instances, read together so that an instance
    /// closing meanwhile is never counted twice.
    var feedsAndRetiredTotals: (open: [Feed], retired: [FeedStatus]) {
        self.state.withLockedValue { (Array($0.instances.values), Array($0.retired.values)) }
    }

    /// Every feed open now.
    public var feeds: [Feed] {
        self.state.withLockedValue { Array($0.instances.values) }
    }

    /// Closes every feed's upstream (shutdown).
    func closeAll() -> EventLoopFuture<Void> {
        let feeds = self.state.withLockedValue { state -> [Feed] in
            let all = Array(state.instances.values)
            state.instances.removeAll()
            state.openPerTemplate.removeAll()
            return all
        }
        let futures = feeds.map { feed in feed.loop.submit { feed.close() } }
        return EventLoopFuture.andAllComplete(futures, on: self.group.next())
    }
}
