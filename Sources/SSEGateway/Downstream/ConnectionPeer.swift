import NIOCore

/// Where one downstream connection comes from: the TCP peer's address, or, on a `proxy_protocol`
/// listener, the client address the load balancer put in its PROXY header. Made per connection by
/// `DownstreamPipeline`; `ProxyProtocolHandler` sets it before any request is read, and the request
/// handlers (HTTP/1 and every HTTP/2 stream of the connection) read it for `clientAddress`.
///
/// Sendable because the pipeline's configurators may be `@Sendable`; the address is a loop-bound box,
/// touched only on the connection's event loop (which its HTTP/2 streams share).
final class ConnectionPeer: Sendable {
    private let box: NIOLoopBoundBox<String?>

    /// Starts as the TCP peer's address (nil for a channel without one, as in `EmbeddedChannel`).
    init(channel: Channel) {
        self.box = NIOLoopBoundBox.makeBoxSendingValue(channel.remoteAddress?.ipAddress, eventLoop: channel.eventLoop)
    }

    /// The peer's IP address (no port), as the forward-auth `X-Forwarded-For` and the per-address limits use it.
    var address: String? {
        get { self.box.value }
        set { self.box.value = newValue }
    }
}
