import Logging
import NIOCore

/// Why an upstream connection ended or could not be made.
public enum UpstreamFailure: Equatable, Sendable, CustomStringConvertible {
    case connectFailed(String)
    case status(Int)
    case contentType(String)
    /// `204 No Content`: the backend asked clients to stop; retried only at the maximum backoff.
    case noContent
    case idleTimeout
    /// The upstream ended the stream.
    case closed
    /// A line or event over `max_event_size`.
    case eventTooLarge
    case error(String)

    public var description: String {
        switch self {
        case .connectFailed(let reason): return "connect failed: \(reason)"
        case .status(let code): return "status \(code)"
        case .contentType(let type): return "wrong content type '\(type)'"
        case .noContent: return "status 204 (backend asked to stop)"
        case .idleTimeout: return "idle timeout"
        case .closed: return "stream closed by upstream"
        case .eventTooLarge: return "event over max_event_size"
        case .error(let reason): return reason
        }
    }

    /// Failures of the same kind are one state for logging, whatever their detail.
    var kind: Int {
        switch self {
        case .connectFailed: return 0
        case .status(let code): return 1000 + code
        case .contentType: return 2
        case .noContent: return 3
        case .idleTimeout: return 4
        case .closed: return 5
        case .eventTooLarge: return 6
        case .error: return 7
        }
    }
}
