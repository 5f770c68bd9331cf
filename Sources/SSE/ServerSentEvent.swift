/// One dispatched Server-Sent Events block, as the WHATWG "event stream interpretation" sees it.
///
/// This is the unit the gateway stores, replays and fans out, so it carries exactly what a browser's
/// `EventSource` observes about a block and nothing else (comments and `retry` fields are not part of it).
///
/// Invariants of values produced by ``SSEParser``:
/// - `data == nil` only for an id-only block, and then `id != nil` and `type == nil`.
/// - `type` is never `""`: an empty event type buffer is reported as `nil` (both mean "message").
/// - `id` never contains U+0000, CR or LF (the standard ignores such `id` fields; CR and LF end lines).
/// - `data` never contains CR: every line ending in the stream is normalised to the LF joining data lines.
///
/// Values built by hand may violate these; ``SSESerializer`` documents what it does with them.
public struct ServerSentEvent: Hashable, Sendable {
    /// The `id` field of this block; `nil` when the block had no valid `id` line.
    ///
    /// `""` is a real value, distinct from `nil`: it resets the client's last event ID, so the next
    /// reconnect is sent without a `Last-Event-ID` header.
    public var id: String?

    /// The `event` field; `nil` (or `""`) means the default type `"message"`.
    public var type: String?

    /// The `data` lines joined with `"\n"`, with the standard's single trailing LF removed.
    ///
    /// `nil` marks an id-only block: a block that had an `id` line but no `data` line. A browser fires
    /// nothing for it, yet it moves the client's resume position, which is why the gateway must forward it.
    public var data: String?

    public init(id: String? = nil, type: String? = nil, data: String?) {
        self.id = id
        self.type = type
        self.data = data
    }
}
