/// A key or JWKS file that cannot be used: unreadable, not a key of the configured algorithm, a JWKS key
/// without `kid` or `alg`, or two keys with the same `kid`.
public struct JWTSetupError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { self.message }
}
