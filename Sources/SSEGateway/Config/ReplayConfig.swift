import NIOCore

/// Bounds of a feed's replay ring; the oldest event goes when any bound is exceeded.
public struct ReplayConfig: Sendable, Equatable {
    public var maxEvents: Int = 1000
    public var maxBytes: Int = 8 * 1024 * 1024
    public var maxAge: TimeAmount = .minutes(10)
    /// When true a resume from an id the buffer no longer holds also sends `event: gap`.
    public var gapEvent: Bool = false

    public init() {}
}
