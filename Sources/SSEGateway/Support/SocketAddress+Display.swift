import NIOCore

extension SocketAddress {
    /// `127.0.0.1:8080` or `[::1]:8080`, for logs: written as the config writes addresses (`HostPort`).
    var hostAndPort: String {
        HostPort(host: self.ipAddress ?? "?", port: self.port ?? 0).description
    }
}
