import Synchronization

/// Live instances of the objects every client connection and stream creates, counted in `init` and
/// `deinit`. When the connections are gone every count is back where it was: the leak tests compare
/// them with a baseline, which proves that nothing a closed connection used is still reachable (a
/// handler that kept its `ChannelHandlerContext` after removal once held its context, pipeline and
/// request decoder forever: ~2 KiB per HTTP/1 connection, ~300 B per HTTP/2 stream). One relaxed atomic
/// add per object, never per event.
enum LiveObjects {
    /// `HTTP1StreamHandler`: one per HTTP/1 connection past the protocol detection.
    static let http1Connections = LiveCounter()
    /// `HTTP2ConnectionGuard`: one per HTTP/2 connection.
    static let http2Connections = LiveCounter()
    /// `HTTP2StreamHandler`: one per HTTP/2 stream.
    static let http2Streams = LiveCounter()
    /// `StreamSession`: one per admitted SSE request, on either protocol.
    static let sessions = LiveCounter()
    /// `PollExchange`: one per poll request past its join.
    static let pollExchanges = LiveCounter()

    /// `ConfigContext`: one per config load while it runs. Not a connection's, so not in `snapshot`; the config
    /// tests check it returns to its baseline (a context and its mappings once held each other forever).
    static let configContexts = LiveCounter()

    /// All counts, in a fixed order, for a comparison with a baseline.
    static var snapshot: Snapshot {
        Snapshot(
            http1Connections: Self.http1Connections.value,
            http2Connections: Self.http2Connections.value,
            http2Streams: Self.http2Streams.value,
            sessions: Self.sessions.value,
            pollExchanges: Self.pollExchanges.value
        )
    }

    struct Snapshot: Equatable, CustomStringConvertible {
        var http1Connections: Int
        var http2Connections: Int
        var http2Streams: Int
        var sessions: Int
        var pollExchanges: Int

        var description: String {
            "http1 connections \(self.http1Connections), http2 connections \(self.http2Connections), "
                + "http2 streams \(self.http2Streams), sessions \(self.sessions), poll exchanges \(self.pollExchanges)"
        }
    }
}
