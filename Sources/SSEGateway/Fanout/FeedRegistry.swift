import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// Maps request paths to feeds. Plain paths map to feeds made when the registry is (before any
/// listener is bound, so a configured path never answers 404); each distinct value of a template path
/// gets its own feed (and upstream connection) when a client subscribes to it, up to `max_feeds`.
/// Looked up once per request (never per event), so a lock is fine here.
public final class FeedRegistry: @unchecked Sendable {
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
        /// The feed is gone (shutdown).
        case unavailable
    }

    private struct State {
        var instances: [String: Feed] = [:]
        var openPerTemplate: [String: Int] = [:]
        /// Final counters of closed template instances, per definition.
        var retired: [String: FeedStatus] = [:]
    }

    private let plain: [String: FeedConfig]
    private let templates: [FeedConfig]
    private let group: EventLoopGroup
    private let tlsContexts: [String: Result<NIOSSLContext, Error>]
    private let idPrefix: String
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(feeds: [FeedConfig], group: EventLoopGroup, idPrefix: String, logger: Logger) {
        var plain: [String: FeedConfig] = [:]
        var templates: [FeedConfig] = []
        var contexts: [String: Result<NIOSSLContext, Error>] = [:]
        for feed in feeds {
            if feed.path.isTemplate { templates.append(feed) } else { plain[feed.path.description] = feed }
            if feed.upstreamURL.isTLS {
                contexts[feed.name] = Result { try UpstreamTLS.makeContext(feed.settings.upstream.tls) }
                if case .failure(let error) = contexts[feed.name] {
                    logger.error("upstream TLS setup failed", metadata: ["feed": "\(feed.name)", "error": "\(error)"])
                }
                if feed.settings.upstream.tls?.verify == false {
                    logger.warning("upstream TLS verification is off", metadata: ["feed": "\(feed.name)"])
                }
            }
        }
        self.plain = plain
        self.templates = templates
        self.group = group
        self.tlsContexts = contexts
        self.idPrefix = idPrefix
        self.logger = logger
        self.makePlainFeeds()
    }

    /// Makes the feeds of plain paths (not started yet).
    private func makePlainFeeds() {
        for (path, config) in self.plain {
            let feed = self.makeFeed(path: path, config: config, values: [:])
            self.state.withLockedValue { $0.instances[path] = feed }
        }
    }

    /// Starts the upstreams of plain feeds with `connect: always`.
    func startPlainFeeds() {
        for feed in self.feeds where !feed.isTemplateInstance {
            feed.loop.execute { feed.start() }
        }
    }

    /// The feed definition a request path (without query) names, or nil (404).
    public func lookup(path: Substring) -> Target? {
        if let config = self.plain[String(path)] {
            return Target(definition: config, key: String(path), values: [:])
        }
        for template in self.templates {
            guard let values = template.path.match(path) else { continue }
            return Target(definition: template, key: template.path.render(values), values: values)
        }
        return nil
    }

    /// The open feed for a target, opening a template instance if needed.
    public func acquire(_ target: Target) -> Acquisition {
        self.state.withLockedValue { state -> Acquisition in
            if let feed = state.instances[target.key] { return .feed(feed) }
            guard target.definition.path.isTemplate else { return .unavailable }
            let open = state.openPerTemplate[target.definition.name, default: 0]
            guard open < target.definition.maxFeeds else { return .tooManyFeeds }
            let feed = self.makeFeed(path: target.key, config: target.definition, values: target.values)
            state.instances[target.key] = feed
            state.openPerTemplate[target.definition.name] = open + 1
            return .feed(feed)
        }
    }

    private func makeFeed(path: String, config: FeedConfig, values: [String: String]) -> Feed {
        let feed = Feed(
            path: path, config: config, upstreamURL: config.upstreamURL.filled(with: values),
            loop: self.group.next(), tlsContext: self.tlsContexts[config.name], idPrefix: self.idPrefix, logger: self.logger
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
