import NIOCore

/// One `feeds:` entry, with the defaults already applied.
public struct FeedConfig: Sendable, Equatable {
    /// Defaults to the path as written.
    public var name: String
    /// Downstream path, possibly a template such as `/rooms/{room}`.
    public var path: PathTemplate
    /// Upstream URL; a template feed's URL may use the same `{name}` placeholders as the path.
    public var upstreamURL: UpstreamURL
    public var connect: ConnectMode = .always
    public var linger: TimeAmount = .seconds(30)
    public var ids: IDMode = .upstream
    /// Templates only: cap on distinct values (over it: 503).
    public var maxFeeds: Int = 10_000
    public var settings: FeedSettings

    public init(name: String, path: PathTemplate, upstreamURL: UpstreamURL, settings: FeedSettings = FeedSettings()) {
        self.name = name
        self.path = path
        self.upstreamURL = upstreamURL
        self.settings = settings
    }
}
