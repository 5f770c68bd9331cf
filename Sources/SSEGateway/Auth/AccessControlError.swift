/// The gateway cannot start: a feed's authorizer cannot be built (a key file that does not parse).
public struct AccessControlError: Error, CustomStringConvertible {
    public var messages: [String]

    public var description: String { "access control: " + self.messages.joined(separator: "; ") }
}
