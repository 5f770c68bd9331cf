/// Where the access log goes (`access_log:`); the config holds nil when it is off (the default).
public enum AccessLogDestination: Sendable, Equatable, CustomStringConvertible {
    /// The process's standard output, one JSON line per request.
    case stdout
    /// A file, appended to and created when missing (mode 0644); reopened on SIGHUP, for log rotation.
    case file(String)

    public var description: String {
        switch self {
        case .stdout: return "stdout"
        case .file(let path): return path
        }
    }
}
