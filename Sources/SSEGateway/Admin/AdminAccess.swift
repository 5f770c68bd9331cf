import Foundation
import NIOConcurrencyHelpers
import NIOHTTP1

/// Who may read the admin listener (SPEC §6, `admin.token_file`): everyone when no token is set; otherwise
/// whoever presents the token. `/healthz` and `/readyz` stay open, since orchestrators' probes (Kubernetes,
/// load balancers) cannot send a token and those answers show nothing.
///
/// The token is accepted as `Authorization: Bearer <token>` (curl, Prometheus' `authorization:`), as the
/// password of `Authorization: Basic` (any user name: this is how a browser gets in — the status page
/// answers 401 with a `Basic` challenge, the browser asks for it once, and then sends it with the page's
/// `EventSource` too, which cannot set headers itself), or as the cookie `ssegate_admin` (for a proxy in
/// front that injects it). A reload may change the token; open connections see it at their next request.
final class AdminAccess: Sendable {
    /// The paths that never ask for the token.
    static let openPaths: Set<Substring> = ["/healthz", "/readyz"]
    /// The cookie the token may come in.
    static let cookieName = "ssegate_admin"
    static let realm = "ssegate-admin"

    /// The token in force, and how many times it changed: a status stream admitted under an older token
    /// ends at its next tick, so that rotating a leaked token also cuts the streams opened with it.
    private let state: NIOLockedValueBox<(token: AdminToken?, generation: Int)>

    init(token: AdminToken?) {
        self.state = NIOLockedValueBox((token, 0))
    }

    /// Takes a reloaded token (nil opens the listener). The same token again changes nothing.
    func update(_ token: AdminToken?) {
        self.state.withLockedValue { state in
            guard state.token != token else { return }
            state = (token, state.generation + 1)
        }
    }

    /// Counts token changes; see `state`.
    var generation: Int { self.state.withLockedValue { $0.generation } }

    /// Whether a request for `path` with these headers may be answered.
    func allows(path: Substring, headers: HTTPHeaders) -> Bool {
        guard !Self.openPaths.contains(path), let token = self.state.withLockedValue({ $0.token }) else {
            return true
        }
        return Self.presented(in: headers).contains { token.accepts($0.utf8) }
    }

    /// Every token a request presents, in each of the three forms. All are tried, so a stale cookie does not
    /// hide a good header.
    static func presented(in headers: HTTPHeaders) -> [String] {
        var tokens: [String] = []
        for value in headers["authorization"] {
            if let bearer = CredentialExtractor.bearerToken(Substring(value)) {
                tokens.append(bearer)
            } else if let password = Self.basicPassword(Substring(value)) {
                tokens.append(password)
            }
        }
        // HTTP/2 clients may split cookies over several fields; each field may hold the name once.
        for value in headers["cookie"] {
            if let cookie = CredentialExtractor.cookie(named: Self.cookieName, in: Substring(value)) {
                tokens.append(cookie)
            }
        }
        return tokens
    }

    /// The password of `Basic base64(user:password)` (scheme case-insensitive), or nil.
    static func basicPassword(_ value: Substring) -> String? {
        let trimmed = value.drop { $0 == " " || $0 == "\t" }
        let scheme = trimmed.prefix { $0 != " " && $0 != "\t" }
        guard scheme.lowercased() == "basic" else { return nil }
        let encoded = trimmed.dropFirst(scheme.count).trimmingCharacters(in: .whitespaces)
        guard let data = Data(base64Encoded: encoded) else { return nil }
        let pair = String(decoding: data, as: UTF8.self)
        guard let colon = pair.firstIndex(of: ":") else { return nil }
        return String(pair[pair.index(after: colon)...])
    }

    /// The paths a browser opens: the status page and its stream. Their 401 also offers `Basic`, so that the
    /// browser asks the person for the token and then answers the stream's challenge with it too.
    static let browserPaths: Set<Substring> = ["/", "/index.html", "/api/status/stream"]

    /// The headers of a 401 for `path`: `Bearer`, what scripts and scrapers send, and on `browserPaths` `Basic`.
    static func challenge(path: Substring) -> [(String, String)] {
        var headers = [("WWW-Authenticate", "Bearer realm=\"\(Self.realm)\"")]
        if Self.browserPaths.contains(path) {
            headers.append(("WWW-Authenticate", "Basic realm=\"\(Self.realm)\", charset=\"UTF-8\""))
        }
        return headers
    }
}
