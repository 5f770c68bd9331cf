import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// Maps request paths to feeds. Plain paths map to feeds made at start; each distinct value of a
/// template path gets its own feed (and upstream connection) on first subscribe, up to `max_feeds`.
/// Looked up once per request (never per event), so a lock is fine here.
public final class FeedRegistry: @unchecked Sendable {
    public enum Resolution {
        case feed(Feed)
        case notFound
        /// The template already has `max_feeds` distinct values open.
        case tooManyFeeds(FeedConfig)
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
    }

    /// Makes the feeds of plain paths and starts those with `connect: always`.
    func startPlainFeeds() {
        for (path, config) in self.plain {
            let feed = self.makeFeed(path: path, config: config, values: [:])
            self.state.withLockedValue { $0.instances[path] = feed }
            feed.loop.execute { feed.start() }
        }
    }

    /// The feed for a request path (without query).
    public func resolve(path: Substring) -> Resolution {
        let key = String(path)
        if let feed = self.state.withLockedValue({ $0.instances[key] }) {
            return .feed(feed)
        }
        if self.plain[key] != nil { return .notFound }  // closed during shutdown
        for template in self.templates {
            guard let values = template.path.match(path) else { continue }
            let key = template.path.render(values)
            return self.state.withLockedValue { state -> Resolution in
                if let feed = state.instances[key] { return .feed(feed) }
                let open = state.openPerTemplate[template.name, default: 0]
                guard open < template.maxFeeds else { return .tooManyFeeds(template) }
                let feed = self.makeFeed(path: key, config: template, values: values)
                state.instances[key] = feed
                state.openPerTemplate[template.name] = open + 1
                return .feed(feed)
            }
        }
        return .notFound
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

    /// Totals of closed template instances, one per definition.
    var retiredTotals: [FeedStatus] {
        self.state.withLockedValue { Array($0.retired.values) }
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
