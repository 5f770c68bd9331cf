import NIOCore
import NIOHTTP1

/// What to do with a request head: a pure decision (no I/O), shared by HTTP/1 and HTTP/2.
enum RouteDecision {
    /// Subscribe the client to `feed`; `headOnly` for HEAD (headers, no stream).
    case stream(StreamRequest)
    /// Several feeds on one response (`multi.path`): a `MultiSession`.
    case multi(MultiRequest)
    /// Answer with a complete response; `close` ends the connection after it.
    case respond(ResponseHead, body: String, close: Bool)
}
