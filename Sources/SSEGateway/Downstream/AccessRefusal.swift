import NIOHTTP1

/// The answers of the access gate that are not a stream: a short JSON body, never `text/event-stream`, so
/// that `EventSource` fails for good (readyState CLOSED) instead of retrying in a loop.
enum AccessRefusal {
    /// 401 (with `WWW-Authenticate`, RFC 6750 §3), 403, or 503 with a jittered `Retry-After` when the auth
    /// backend cannot answer. `extraHeaders` are the request's CORS headers, so a page can read the status.
    static func response(
        for decision: AuthDecision,
        retryAfter: @autoclosure () -> String,
        extraHeaders: [(String, String)]
    ) -> (ResponseHead, String) {
        var headers: [(String, String)] = [
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
        ]
        let status: HTTPResponseStatus
        let body: String
        switch decision {
        case .refused(let refusal) where refusal.status == 403:
            status = .forbidden
            headers.append(("WWW-Authenticate", "Bearer realm=\"ssegate\", error=\"insufficient_scope\""))
            body = "{\"error\":\"forbidden\",\"reason\":\(JSONText.string(refusal.reason))}\n"
        case .refused(let refusal):
            status = .unauthorized
            headers.append(
                (
                    "WWW-Authenticate",
                    "Bearer realm=\"ssegate\", error=\"invalid_token\", error_description=\"\(refusal.reason)\""
                )
            )
            body = "{\"error\":\"invalid_token\",\"reason\":\(JSONText.string(refusal.reason))}\n"
        case .unavailable(let reason):
            status = .serviceUnavailable
            headers.append(("Retry-After", retryAfter()))
            body = "{\"error\":\"auth_unavailable\",\"reason\":\(JSONText.string(reason))}\n"
        case .allowed:
            preconditionFailure("an allowed request is not refused")
        }
        return (ResponseHead(status: status, headers: headers + extraHeaders), body)
    }

    /// How the access log records a refusal: `auth_refused` with the refusal's label (a ``TokenRefusal``
    /// raw value, `forbidden`, `forward_401`), or `auth_unavailable` with the backend's.
    static func logged(_ decision: AuthDecision) -> (end: AccessLogEnd, reason: String) {
        switch decision {
        case .refused(let refusal): return (.authRefused, refusal.reason)
        case .unavailable(let reason): return (.authUnavailable, reason)
        case .allowed: preconditionFailure("an allowed request is not refused")
        }
    }
}
