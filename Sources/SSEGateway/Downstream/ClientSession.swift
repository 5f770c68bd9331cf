/// What a connection handler tells the session it carries: a one-feed `StreamSession` or a `MultiSession`.
protocol ClientSession: AnyObject {
    /// The transport's writability changed (channel watermarks, or HTTP/2 flow control).
    func writabilityChanged()
    /// The connection or stream is gone.
    func transportClosed()
    /// The connection or stream failed (an I/O or TLS error, not the client's close); `transportClosed`
    /// follows. For the access log's `error`.
    func transportFailed(_ error: any Error)
}

extension StreamSession: ClientSession {}
