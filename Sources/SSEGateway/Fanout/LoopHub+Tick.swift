import NIOCore

extension LoopHub {
    /// Keepalives and lag checks run from one timer per loop, at a fraction of the smallest setting.
    static func tickInterval(for feeds: [FeedConfig]) -> TimeAmount {
        feeds.map { Self.tickInterval(keepalive: $0.settings.keepalive, maxLag: $0.settings.client.maxLag) }.min()
            ?? .seconds(1)
    }

    /// A quarter of the smaller of keepalive and max_lag, between 10 ms and 1 s.
    static func tickInterval(keepalive: TimeAmount, maxLag: TimeAmount) -> TimeAmount {
        .nanoseconds(min(max(min(keepalive, maxLag).nanoseconds / 4, 10_000_000), 1_000_000_000))
    }
}
