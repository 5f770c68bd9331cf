import struct Foundation.Date

/// What a valid token lets its bearer do, and until when.
public struct VerifiedToken: Sendable, Hashable {
    /// The token's `exp`, or nil when it has none; the stream's end-of-credential time.
    public var expiresAt: Date?
    /// The `sub` claim, for logs.
    public var subject: String?
    /// The feeds the token grants: from its claim, or the configured `default_allow` when it has none.
    public var grants: [FeedGrant]

    public init(expiresAt: Date?, subject: String?, grants: [FeedGrant]) {
        self.expiresAt = expiresAt
        self.subject = subject
        self.grants = grants
    }

    /// True when one of the grants allows the concrete `path` (see ``FeedGrant/allows(path:feedTemplate:)``).
    public func allows(path: String, feedTemplate: PathTemplate? = nil) -> Bool {
        self.grants.contains { $0.allows(path: path, feedTemplate: feedTemplate) }
    }
}
