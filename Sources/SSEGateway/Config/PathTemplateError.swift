/// Why a path or an upstream URL in the config does not parse; `message` names what is wrong.
public struct PathTemplateError: Error, Sendable {
    public var message: String
}
