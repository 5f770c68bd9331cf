/// What a feed demands before it streams (SPEC §6).
public enum AuthMode: String, Sendable, Hashable, CaseIterable {
    /// Anyone who reaches the listener may subscribe (the default).
    case none
    /// A JWT verified with the configured keys.
    case jwt
    /// An answer from an auth backend, like nginx `auth_request`.
    case forward
    /// Anonymous clients are let in; a credential that is present must be a valid JWT (never downgraded).
    case optional
}
