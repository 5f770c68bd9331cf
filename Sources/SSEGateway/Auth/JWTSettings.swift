import NIOCore

/// What `auth.jwt` says for a feed: where the keys are, which issuer and audience a token must name,
/// how much clock skew to forgive, and which claim lists the feeds a token grants.
///
/// Plain values; the files are read when a ``TokenVerifier`` is built from them.
public struct JWTSettings: Sendable, Hashable {
    /// Keys from PEM or secret files, each pinned to one algorithm.
    public var keys: [JWTKeySettings]
    /// A JWKS file (`{"keys": [...]}`); each of its keys must carry a `kid` and an `alg`.
    public var jwksFile: String?
    /// A JWKS URL, fetched at start-up, every `jwksRefresh`, and on a token naming an unknown `kid` (at most
    /// once per `jwksMinRefresh`); a failed fetch keeps the last good set.
    public var jwksURL: UpstreamURL?
    public var jwksRefresh: TimeAmount
    public var jwksMinRefresh: TimeAmount
    /// When set, a token's `iss` must equal it.
    public var issuer: String?
    /// When set, a token's `aud` (a string or a list) must contain it.
    public var audience: String?
    /// Clock skew forgiven on `exp` and `nbf`, in seconds.
    public var leewaySeconds: Int64
    /// The claim that lists the feed paths or patterns a token grants.
    public var claim: String
    /// What a token without `claim` grants (default: nothing).
    public var defaultAllow: [FeedGrant]
    /// Where a request's token is looked for after `Authorization: Bearer`.
    public var credentials: CredentialExtractor

    public init(
        keys: [JWTKeySettings] = [],
        jwksFile: String? = nil,
        jwksURL: UpstreamURL? = nil,
        jwksRefresh: TimeAmount = .minutes(10),
        jwksMinRefresh: TimeAmount = .seconds(30),
        issuer: String? = nil,
        audience: String? = nil,
        leewaySeconds: Int64 = 30,
        claim: String = "feeds",
        defaultAllow: [FeedGrant] = [],
        credentials: CredentialExtractor = CredentialExtractor(cookieName: "access_token")
    ) {
        self.keys = keys
        self.jwksFile = jwksFile
        self.jwksURL = jwksURL
        self.jwksRefresh = jwksRefresh
        self.jwksMinRefresh = jwksMinRefresh
        self.issuer = issuer
        self.audience = audience
        self.leewaySeconds = leewaySeconds
        self.claim = claim
        self.defaultAllow = defaultAllow
        self.credentials = credentials
    }
}
