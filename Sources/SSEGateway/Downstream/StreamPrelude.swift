import Foundation
import NIOCore
import SSE

/// The bytes a stream starts with, before replay and live events: `retry:`, the optional padding
/// comment, and the gap signals when a resume id is no longer buffered.
enum StreamPrelude {
    static func make(
        settings: FeedSettings,
        lookup: ReplayBuffer.Lookup,
        resumeID: String?,
        replayFrom: String?,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: settings.padding ? 2200 : 64)
        SSESerializer.writeRetry(milliseconds: Self.startRetryMilliseconds(settings), into: &buffer)
        if settings.padding {
            // Old polyfills (IE/XHR streaming) and some proxies only hand data on after the first 2 KiB.
            SSESerializer.writeComment(String(repeating: " ", count: 2048), into: &buffer)
        }
        if lookup.resume == .gap {
            let from = replayFrom ?? ""
            SSESerializer.writeComment(
                "gap: last event id \(Self.printable(resumeID ?? "")) is not buffered; replaying from \(Self.printable(from))",
                into: &buffer
            )
            if settings.replay.gapEvent {
                buffer.writeStaticString("\n")
                let data =
                    "{\"lastEventId\":\(JSONText.string(resumeID ?? "")),\"replayFrom\":\(JSONText.string(from))}"
                SSESerializer.write(ServerSentEvent(id: nil, type: "gap", data: data), into: &buffer)
                return buffer
            }
        }
        buffer.writeStaticString("\n")
        return buffer
    }

    /// The `retry:` of a stream start: `retry` plus a random share of it up to `retry_jitter`, so the
    /// clients of a replica that crashed (whose streams all started with this line) come back spread out.
    /// A drain spreads its own `retry:` (`LoopHub.drain`); 0 % sends exactly `retry`.
    static func startRetryMilliseconds(_ settings: FeedSettings) -> Int64 {
        let retry = settings.retry.nanoseconds / 1_000_000
        let spread = Int64(Double(retry) * settings.retryJitter)
        guard spread > 0 else { return retry }
        return retry + Int64.random(in: 0...spread)
    }

    /// What clients that resumed from `lastEventID` get when the upstream, asked to resume after it,
    /// sent `next` instead of the id after it: the same two signals as a gap at join (the comment, and
    /// `event: gap` with `replay.gap_event`), `replayFrom` naming the first event after the gap. With
    /// `feed` (a client of several feeds, `/multi`) both name the feed, as the gaps at a multi join do.
    static func gapNotice(settings: FeedSettings, lastEventID: String, next: String, feed: String? = nil) -> ByteBuffer
    {
        var buffer = ByteBuffer()
        let label = feed.map { "gap \($0)" } ?? "gap"
        SSESerializer.writeComment(
            "\(label): the upstream did not resume after last event id \(Self.printable(lastEventID)); next is \(Self.printable(next))",
            into: &buffer
        )
        buffer.writeStaticString("\n")
        guard settings.replay.gapEvent else { return buffer }
        if let feed {
            MultiPrelude.writeGapEvent(feed: feed, lastEventID: lastEventID, replayFrom: next, into: &buffer)
        } else {
            let data = "{\"lastEventId\":\(JSONText.string(lastEventID)),\"replayFrom\":\(JSONText.string(next))}"
            SSESerializer.write(ServerSentEvent(id: nil, type: "gap", data: data), into: &buffer)
        }
        return buffer
    }

    /// The id of the first replayed event that carries one: where replay started.
    static func replayStart(_ lookup: ReplayBuffer.Lookup) -> String? {
        lookup.events.first(where: { ($0.id ?? "").isEmpty == false })?.id
    }

    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 ? "?" : Character($0) }.prefix(200))
    }

}
