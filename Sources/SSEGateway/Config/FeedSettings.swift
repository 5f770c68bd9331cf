import NIOCore

/// The per-feed settings that `defaults:` sets for every feed and that a feed may override.
public struct FeedSettings: Sendable, Equatable {
    /// Sent as `retry:` at the start of each stream.
    public var retry: TimeAmount = .seconds(3)
    /// The largest share of `retry` added at random to the `retry:` of each stream start (0.5: up to
    /// 50 % more), so the clients of a replica that went away do not all come back in the same moment.
    public var retryJitter: Double = 0.5
    /// A client that has had no bytes for this long gets a comment line.
    public var keepalive: TimeAmount = .seconds(15)
    /// When true a 2 KiB comment is sent first, for old polyfills and buffering proxies.
    public var padding: Bool = false
    /// gzip when the client accepts it (served once streaming compression lands).
    public var compression: Bool = true
    public var replay = ReplayConfig()
    public var client = ClientLimitsConfig()
    public var upstream = UpstreamSettings()
    public var cors = CORSConfig()
    public var auth = AuthConfig()
    /// `delivery:` stream (default) or poll; `?transport=poll` asks for poll on any feed.
    public var delivery: DeliveryMode = .stream
    public var poll = PollSettings()

    public init() {}
}
