import SSE

/// An ``SSEParser/Output`` compared byte for byte: `String`'s `==` treats canonically equivalent texts (é as
/// one scalar or as e + accent) as equal, which would hide a parser that changed the bytes.
public enum ExactOutput: Equatable, CustomStringConvertible {
    case event(id: [UInt8]?, type: [UInt8]?, data: [UInt8]?)
    case retry(Int)

    public init(_ output: SSEParser.Output) {
        switch output {
        case .event(let event):
            self = .event(
                id: event.id.map { Array($0.utf8) },
                type: event.type.map { Array($0.utf8) },
                data: event.data.map { Array($0.utf8) }
            )
        case .retry(let milliseconds):
            self = .retry(milliseconds)
        }
    }

    public var description: String {
        func text(_ bytes: [UInt8]?) -> String {
            bytes.map { String(reflecting: String(decoding: $0, as: UTF8.self)) } ?? "nil"
        }
        switch self {
        case .event(let id, let type, let data):
            return "event(id: \(text(id)), type: \(text(type)), data: \(text(data)))"
        case .retry(let milliseconds): return "retry(\(milliseconds))"
        }
    }
}
