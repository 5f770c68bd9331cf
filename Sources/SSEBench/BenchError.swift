/// Why a bench run could not start or go on, as one line for the command to print.
public struct BenchError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// A bad option: nothing was tried.
        case usage
        /// The server does not speak the protocol asked for: the run stops.
        case protocolMismatch
        /// One connection failed: counted as connect errors, the run goes on.
        case connection
    }
    public var kind: Kind
    public var description: String

    static func usage(_ message: String) -> BenchError { BenchError(kind: .usage, description: message) }

    static func notHTTP2(url: String, selected: String?) -> BenchError {
        BenchError(
            kind: .protocolMismatch,
            description:
                "\(url): the server did not select h2 by ALPN (it selected \(selected ?? "no protocol")); run without --http2 for HTTP/1.1"
        )
    }

    static let closedDuringHandshake = BenchError(
        kind: .connection,
        description: "connection closed during the TLS handshake"
    )

    static func handshakeTimeout(seconds: Double) -> BenchError {
        BenchError(
            kind: .connection,
            description: "TLS handshake timeout: no handshake within \(seconds) s of the TCP connect"
        )
    }
}
