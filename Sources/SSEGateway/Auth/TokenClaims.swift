import JWTKit

/// The payload of a token as ssegate reads it: the registered claims it checks, and every other claim
/// whose value is a string or a list of strings (the feeds claim's name is configurable, so it cannot be
/// a fixed property).
///
/// `verify(using:)` does nothing: jwt-kit calls it after the signature check, but the time, issuer and
/// audience checks live in ``TokenVerifier`` so that each failure has its own ``TokenRefusal`` and the leeway
/// applies.
struct TokenClaims: JWTPayload, Hashable {
    /// `exp` and `nbf` as NumericDate (seconds since the epoch, possibly fractional).
    var expiration: Double?
    var notBefore: Double?
    var issuer: String?
    /// `aud`: one string or a list.
    var audience: [String]?
    var subject: String?
    /// Other claims holding a string (as a one-element list) or a list of strings.
    var stringLists: [String: [String]]
    /// Other claims present with a value of another type (a number, an object, a list of non-strings).
    var otherClaims: Set<String>

    init(
        expiration: Double? = nil,
        notBefore: Double? = nil,
        issuer: String? = nil,
        audience: [String]? = nil,
        subject: String? = nil,
        stringLists: [String: [String]] = [:]
    ) {
        self.expiration = expiration
        self.notBefore = notBefore
        self.issuer = issuer
        self.audience = audience
        self.subject = subject
        self.stringLists = stringLists
        self.otherClaims = []
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        self.init()
        for key in container.allKeys {
            switch key.stringValue {
            case "exp": self.expiration = try container.decode(Double.self, forKey: key)
            case "nbf": self.notBefore = try container.decode(Double.self, forKey: key)
            case "iss": self.issuer = try container.decode(String.self, forKey: key)
            case "sub": self.subject = try container.decode(String.self, forKey: key)
            case "aud":
                if let one = try? container.decode(String.self, forKey: key) {
                    self.audience = [one]
                } else {
                    self.audience = try container.decode([String].self, forKey: key)
                }
            default:
                if let list = try? container.decode([String].self, forKey: key) {
                    self.stringLists[key.stringValue] = list
                } else if let one = try? container.decode(String.self, forKey: key) {
                    self.stringLists[key.stringValue] = [one]
                } else {
                    self.otherClaims.insert(key.stringValue)
                }
            }
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encodeIfPresent(self.expiration, forKey: Key(stringValue: "exp"))
        try container.encodeIfPresent(self.notBefore, forKey: Key(stringValue: "nbf"))
        try container.encodeIfPresent(self.issuer, forKey: Key(stringValue: "iss"))
        try container.encodeIfPresent(self.audience, forKey: Key(stringValue: "aud"))
        try container.encodeIfPresent(self.subject, forKey: Key(stringValue: "sub"))
        for (name, list) in self.stringLists {
            try container.encode(list, forKey: Key(stringValue: name))
        }
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
