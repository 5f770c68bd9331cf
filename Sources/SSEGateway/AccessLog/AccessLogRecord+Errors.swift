import NIOCore
import NIOHTTP2
import NIOSSL

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

    /// The client went away, which the log calls `client_closed`, not `error`: its stream reset
    /// (RST_STREAM, as a browser leaving a page over HTTP/2), a TCP reset or broken pipe, an end of input,
    /// or a TLS peer that closed without `close_notify`.
    static func isPeerClose(_ error: any Error) -> Bool {
        switch error {
        case is NIOHTTP2Errors.StreamClosed:
            return true
        case let error as IOError:
            return error.errnoCode == ECONNRESET || error.errnoCode == EPIPE
        case let error as ChannelError:
            return error == .eof || error == .ioOnClosedChannel || error == .alreadyClosed
                || error == .outputClosed
        case let error as NIOSSLError:
            return error == .uncleanShutdown
        default:
            return false
        }
    }
}
