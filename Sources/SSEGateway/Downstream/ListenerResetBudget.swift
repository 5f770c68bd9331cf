import NIOCore
import Synchronization

/// The premature stream ends (`HTTP2ConnectionBudget`) that all HTTP/2 connections of one listener may
/// make per second: `limits.premature_resets_per_second`. A stream ends prematurely when the client
/// resets it, or closes its connection, before the gateway sent the stream's response headers and within
/// a second or two of opening it (Envoy's "premature reset"). SwiftNIO limits resets per connection (200
/// per 30 s), which an attacker evades by spreading HEADERS + RST_STREAM pairs over many short
/// connections, or by opening streams and closing the connection under them; this budget is shared by
/// every connection of the listener, so the rate at which abandoned streams make the gateway route
/// requests, join feeds and tear streams down stays bounded however many connections carry them. Once
/// the second's budget is spent, a connection that resets a stream prematurely or opens a new stream gets
/// GOAWAY (ENHANCE_YOUR_CALM) and is closed; streams already answered keep streaming. Shared by the
/// listener's event loops: the lock is taken once per premature end and once per new stream, never per
/// event.
final class ListenerResetBudget: Sendable {
    private let window = Mutex(ResetWindow())

    /// Records one premature reset; false when the listener is over `limit` in the current second.
    func allow(limit: Int, now: NIODeadline = .now()) -> Bool {
        self.window.withLock { $0.record(limit: limit, now: now) }
    }

    /// Records `count` premature ends at once (the unanswered streams of a connection that closed).
    func charge(_ count: Int, now: NIODeadline = .now()) {
        guard count > 0 else { return }
        self.window.withLock { $0.add(count, now: now) }
    }

    /// True while the current second's budget is spent: new streams are refused.
    func isSpent(limit: Int, now: NIODeadline = .now()) -> Bool {
        self.window.withLock { $0.isSpent(limit: limit, now: now) }
    }
}

/// A fixed one-second window count (the lock-protected state of `ListenerResetBudget`).
struct ResetWindow {
    static let length = TimeAmount.seconds(1)

    private var start = NIODeadline.uptimeNanoseconds(0)
    private(set) var count = 0

    /// Counts one event; true while the window's count stays within `limit`.
    mutating func record(limit: Int, now: NIODeadline) -> Bool {
        self.add(1, now: now)
        return self.count <= limit
    }

    /// Counts `events` events.
    mutating func add(_ events: Int, now: NIODeadline) {
        if now - self.start >= Self.length {
            self.start = now
            self.count = 0
        }
        self.count += events
    }

    /// Whether the current window has already counted `limit` events (a new window has counted none).
    func isSpent(limit: Int, now: NIODeadline) -> Bool {
        now - self.start < Self.length && self.count >= limit
    }
}
