import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension AccessLogRecord {
    /// The `reason` of an `error` line: the error's description, bounded.
    static func errorReason(_ error: any Error) -> String {
        String(String(describing: error).prefix(200))
    }

    /// A reset or a broken pipe: the client went away, which the log calls `client_closed`, not `error`.
    static func isPeerClose(_ error: any Error) -> Bool {
        guard let error = error as? IOError else { return false }
        return error.errnoCode == ECONNRESET || error.errnoCode == EPIPE
    }
}
