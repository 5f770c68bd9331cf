import Crypto
import NIOHTTP1

/// What a forward-auth answer is cached under: the credential a request brought (its `Cookie` and
/// `Authorization` values) and the path it asks for.
///
/// The credential is kept only as its SHA-256 digest: 100,000 entries of raw cookies could hold hundreds of
/// megabytes, and the cache should not be a second copy of every session secret. A 256-bit digest makes two
/// credentials sharing one entry (one user's answer served to another) practically impossible.
struct ForwardAuthKey: Hashable, Sendable {
    /// SHA-256 of the `Cookie` values, then the `Authorization` values, each as sent and delimited.
    var credential: SHA256Digest
    /// The concrete path asked for (no query), the backend's `X-Original-URI`.
    var path: String

    init(credential: SHA256Digest, path: String) {
        self.credential = credential
        self.path = path
    }

    init(headers: HTTPHeaders, path: String) {
        self.init(credential: Self.digest(headers: headers), path: path)
    }

    /// Header values cannot contain NUL or `\u{1}` (RFC 9110 §5.5), so they delimit values and the two fields
    /// unambiguously: `Cookie: a` + `Authorization: b` never hashes like `Cookie: a, b`.
    static func digest(headers: HTTPHeaders) -> SHA256Digest {
        var hash = SHA256()
        for value in headers["cookie"] { Self.update(&hash, with: value) }
        hash.update(data: [1])
        for value in headers["authorization"] { Self.update(&hash, with: value) }
        return hash.finalize()
    }

    private static func update(_ hash: inout SHA256, with value: String) {
        var value = value
        value.withUTF8 { hash.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        hash.update(data: [0])
    }
}
