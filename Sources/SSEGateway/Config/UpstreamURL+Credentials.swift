/// How an upstream URL is shown and how its credentials are sent.
///
/// A URL is shown (logs, `/api/feeds`, the status stream and page, reload messages) only through
/// `description`, which leaves out `user:password@` and hides every query value: `?api_key=X&room=7`
/// shows as `?api_key=***&room=***`. The names stay, so an operator can still tell URLs apart; the
/// values, where backends put API keys and tokens, never leave the process except in the request itself.
extension UpstreamURL {
    /// What every query value is shown as.
    static let redactedValue = "***"

    /// `target` with each query value replaced by `***`; a parameter without `=` is hidden whole, as it may
    /// be a bare token. A `{name}` placeholder of a template's URL stays: it is a name, not a secret.
    var redactedTarget: String {
        QueryRedaction.redacting(self.target) { pair, name, value in
            guard !pair.isEmpty else { return "" }
            guard let value else { return Self.redactedValue }
            if value.isEmpty || Self.isPlaceholder(value) { return String(pair) }
            return name + "=" + Self.redactedValue
        }
    }

    private static func isPlaceholder(_ value: Substring) -> Bool {
        value.count > 2 && value.hasPrefix("{") && value.hasSuffix("}") && !value.dropFirst().contains("{")
    }

    /// The `Authorization` header value for `user:password@` in the URL, or nil without credentials.
    /// User and password are percent-decoded first (RFC 3986 §3.2.1 userinfo is percent-encoded), so
    /// `bob:Pa55w0rd%40x@` sends the password `Pa55w0rd@x`, as curl and browsers do.
    public var basicAuthorization: String? {
        guard let userInfo = self.userInfo, let bytes = Self.decodedCredentials(userInfo) else {
            return nil
        }
        return "Basic " + Base64.encode(bytes)
    }

    /// `user:password` percent-decoded, as raw bytes (Basic credentials are bytes, not necessarily UTF-8);
    /// nil when an escape is malformed. Decoding the whole is decoding both parts: the separating `:` is
    /// never an escape.
    static func decodedCredentials(_ userInfo: String) -> [UInt8]? {
        PercentDecoding.bytes(Substring(userInfo))
    }
}
