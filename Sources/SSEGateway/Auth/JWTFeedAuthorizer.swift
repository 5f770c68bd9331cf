/// `auth: jwt` and `auth: optional` for one feed: finds the token (header, cookie, query), verifies it, and
/// checks that its feeds claim (or `default_allow`) lists the requested path.
///
/// `optional` lets a request with no credential in anonymously, but a credential that is present must be
/// valid: an expired or forged token is refused (401), never downgraded to anonymous, so a client whose
/// cookie expired learns it instead of silently receiving the anonymous view. A valid token is not held to
/// its feeds claim on an `optional` feed, which anyone may read anyway.
public struct JWTFeedAuthorizer: FeedAuthorizer {
    /// The longest token looked at; anything longer is refused as malformed before it is decoded.
    public static let maxTokenBytes = 8 * 1024

    private let verifier: TokenVerifier
    private let credentials: CredentialExtractor
    private let anonymousAllowed: Bool
    private let leewaySeconds: Int64

    public init(verifier: TokenVerifier, settings: JWTSettings, anonymousAllowed: Bool) {
        self.verifier = verifier
        self.credentials = settings.credentials
        self.leewaySeconds = settings.leewaySeconds
        self.anonymousAllowed = anonymousAllowed
    }

    public func authorize(_ request: AuthRequest, feedTemplate: PathTemplate) async -> AuthDecision {
        guard let credential = self.credentials.credential(headers: request.headers, query: request.query[...]) else {
            return self.anonymousAllowed ? .allowed(.anonymous) : .refused(.unauthorized(.missing))
        }
        guard credential.token.utf8.count <= Self.maxTokenBytes else { return .refused(.unauthorized(.malformed)) }
        switch await self.verifier.verify(credential.token) {
        case .failure(let refusal):
            return .refused(.unauthorized(refusal))
        case .success(let token):
            guard self.anonymousAllowed || token.allows(path: request.path, feedTemplate: feedTemplate) else {
                return .refused(.forbidden)
            }
            // The stream ends when the token stops being accepted, `exp` plus the leeway: ending it at `exp`
            // would let the browser's reconnect in again with the same token, only to be cut again.
            let end = token.expiresAt.map { $0.addingTimeInterval(Double(self.leewaySeconds)) }
            return .allowed(AuthGrant(expiresAt: end, subject: token.subject))
        }
    }
}
