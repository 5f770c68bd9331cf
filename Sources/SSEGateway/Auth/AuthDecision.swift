import NIOCore

import struct Foundation.Date

/// An authorizer's answer for one request (or one re-check of a stream).
public enum AuthDecision: Sendable, Equatable {
    /// Let in, for as long as `grant` says.
    case allowed(AuthGrant)
    /// 401 or 403, with the reason counted in metrics.
    case refused(AuthRefusal)
    /// The auth backend is down, slow or saturated: `503` with a jittered `Retry-After`, never allow.
    case unavailable(reason: String)
}

/// What an allowed request may keep: when its credential runs out, and when to ask again.
public struct AuthGrant: Sendable, Equatable {
    /// The stream ends with `auth-expired` at this time (a JWT's `exp`); nil never ends it for this reason.
    public var expiresAt: Date?
    /// Ask the authorizer again after this long (forward auth's `recheck`); nil never asks again.
    public var recheckAfter: TimeAmount?
    /// Who the credential names (a JWT's `sub`), for logs; nil for anonymous or unknown.
    public var subject: String?
    /// True when no credential was presented and the feed allows that (`auth: none` or `optional`).
    public var anonymous: Bool

    public init(
        expiresAt: Date? = nil,
        recheckAfter: TimeAmount? = nil,
        subject: String? = nil,
        anonymous: Bool = false
    ) {
        self.expiresAt = expiresAt
        self.recheckAfter = recheckAfter
        self.subject = subject
        self.anonymous = anonymous
    }

    /// What `auth: none` and an anonymous client of `auth: optional` get.
    public static let anonymous = AuthGrant(anonymous: true)
}

/// A refused request: its status and why (the metric label).
public struct AuthRefusal: Sendable, Hashable {
    /// 401 (no valid credential) or 403 (a valid credential that does not allow this feed).
    public var status: Int
    /// A short label: a ``TokenRefusal`` raw value, `forbidden`, or a forward-auth outcome such as `forward_401`.
    public var reason: String

    public init(status: Int, reason: String) {
        self.status = status
        self.reason = reason
    }

    public static func unauthorized(_ refusal: TokenRefusal) -> AuthRefusal {
        AuthRefusal(status: 401, reason: refusal.rawValue)
    }

    /// A valid credential that does not list the feed.
    public static let forbidden = AuthRefusal(status: 403, reason: "forbidden")
}
