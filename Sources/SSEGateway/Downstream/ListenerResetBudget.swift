import NIOCore
import Synchronization

/// The premature stream resets (`HTTP2ConnectionBudget`) that all HTTP/2 connections of one listener may
/// make per second: `limits.premature_resets_per_second`. SwiftNIO limits resets per connection (200 per
/// 30 s), which an attacker evades by spreading HEADERS + RST_STREAM pairs over many short connections;
/// this budget is shared by every connection of the listener, so the rate at which reset streams make
/// the gateway route requests, join feeds and tear streams down stays bounded however many connections
/// carry them. Over it, the connection that made the reset gets GOAWAY (ENHANCE_YOUR_CALM) and is closed;
/// clients that do not reset streams are never affected. Shared by the listener's event loops: the lock
/// is taken once per premature reset, never per event.
final class ListenerResetBudget: Sendable {
    private let window = Mutex(ResetWindow())

    /// Records one premature reset; false when the listener is over `limit` in the current second.
    func allow(limit: Int, now: NIODeadline = .now()) -> Bool {
        self.window.withLock { $0.record(limit: limit, now: now) }
    }
}

/// A fixed one-second window count (the lock-protected state of `ListenerResetBudget`).
struct ResetWindow {
    static let length = TimeAmount.seconds(1)

    private var start = NIODeadline.uptimeNanoseconds(0)
    private(set) var count = 0

    /// Counts one event; true while the window's count stays within `limit`.
    mutating func record(limit: Int, now: NIODeadline) -> Bool {
        if now - self.start >= Self.length {
            self.start = now
            self.count = 0
        }
        self.count += 1
        return self.count <= limit
    }
}
