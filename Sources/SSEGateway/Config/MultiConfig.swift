/// `multi:` (SPEC §6a): where several feeds share one connection, and how many one connection may name.
public struct MultiConfig: Sendable, Equatable {
    /// The downstream path of the multi-feed endpoint; it must not be a feed's path.
    public var path: String = "/multi"
    /// `feed=` parameters one request may carry; over it the request gets `400`.
    public var maxFeeds: Int = 20

    public init() {}
}
