import NIOCore

/// What the forward-auth backend said about one (credential, path), in the form the cache keeps: allowed
/// (possibly narrowed to some feeds) or refused. "No answer" is not one of these: it is never cached.
enum ForwardAuthAnswer: Sendable, Hashable {
    /// 2xx. `grants` is nil without the grant header (the path asked about is allowed), or the patterns the
    /// header listed, one of which the request's path must match.
    case allowed(grants: [FeedGrant]?)
    /// 401 or 403 from the backend, or a 2xx whose grant header could not be parsed.
    case refused(AuthRefusal)

    /// The answer for a backend response `status` with the grant header's values `grantValues` (all fields
    /// of it, in order; empty when absent), or nil when the status means "no usable answer" (3xx, 404, 5xx…),
    /// which the caller turns into `503`, never into an allow.
    init?(status: Int, grantValues: [String]) {
        switch status {
        case 200..<300:
            guard !grantValues.isEmpty else {
                self = .allowed(grants: nil)
                return
            }
            var grants: [FeedGrant] = []
            for value in grantValues {
                for item in value.split(separator: ",") {
                    let pattern = item.trimmedOWS()
                    guard !pattern.isEmpty else { continue }
                    // A backend that narrows with a pattern the gateway cannot read must not end up allowing
                    // more than it meant: refuse, under a reason of its own so that the metric shows it.
                    guard let grant = try? FeedGrant(parsing: pattern) else {
                        self = .refused(.forwardBadGrant)
                        return
                    }
                    grants.append(grant)
                }
            }
            self = .allowed(grants: grants)
        case 401:
            self = .refused(.forward401)
        case 403:
            self = .refused(.forward403)
        default:
            return nil
        }
    }

    /// The gate's decision for a request to `path` on the feed `feedTemplate`.
    func decision(path: String, feedTemplate: PathTemplate, recheck: TimeAmount) -> AuthDecision {
        switch self {
        case .allowed(let grants):
            if let grants, !grants.contains(where: { $0.allows(path: path, feedTemplate: feedTemplate) }) {
                return .refused(.forbidden)
            }
            return .allowed(AuthGrant(recheckAfter: recheck))
        case .refused(let refusal):
            return .refused(refusal)
        }
    }
}

extension AuthRefusal {
    /// The forward-auth backend answered 401.
    static let forward401 = AuthRefusal(status: 401, reason: "forward_401")
    /// The forward-auth backend answered 403.
    static let forward403 = AuthRefusal(status: 403, reason: "forward_403")
    /// The backend allowed but narrowed with a grant header the gateway cannot parse.
    static let forwardBadGrant = AuthRefusal(status: 403, reason: "forward_bad_grant")
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace around list items).
    fileprivate func trimmedOWS() -> String {
        var trimmed = self
        while let first = trimmed.first, first == " " || first == "\t" { trimmed.removeFirst() }
        while let last = trimmed.last, last == " " || last == "\t" { trimmed.removeLast() }
        return String(trimmed)
    }
}
