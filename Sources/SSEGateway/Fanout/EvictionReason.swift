import NIOCore

/// Why a client was disconnected by the gateway.
public enum EvictionReason: String, Sendable, CaseIterable {
    /// It fell more than `client.max_queue` bytes behind.
    case maxQueue = "max_queue"
    /// Its oldest unsent event got older than `client.max_lag`.
    case maxLag = "max_lag"
}
