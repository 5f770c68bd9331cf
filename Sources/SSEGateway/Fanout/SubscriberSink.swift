import NIOCore

/// Who owns a subscriber's stream and ends it when the fan-out says so. All calls happen on the
/// subscriber's event loop.
public protocol SubscriberSink: AnyObject {
    /// End the stream because the gateway evicted the client.
    func evict(_ reason: EvictionReason)
    /// End the stream because the gateway or the feed is going away (`reason` says which).
    func close(_ reason: CloseReason)
}
