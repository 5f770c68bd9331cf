import NIOCore

extension SocketAddress {
    /// `127.0.0.1:8080` or `[::1]:8080`, for logs.
    var hostAndPort: String {
        let host = self.ipAddress ?? "?"
        return host.contains(":") ? "[\(host)]:\(self.port ?? 0)" : "\(host):\(self.port ?? 0)"
    }
}
