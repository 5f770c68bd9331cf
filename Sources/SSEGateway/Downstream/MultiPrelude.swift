import NIOCore
import SSE

/// The bytes a multi-feed response starts with (`MultiSession`): `retry:`, the optional padding comment,
/// then for each feed whose resume id is no longer buffered a gap signal that names the feed (the comment,
/// and `event: gap` with the feed's `replay.gap_event`).
enum MultiPrelude {
    /// One feed whose resume id fell out of its replay buffer.
    struct Gap {
        /// The feed's path, as requested.
        var feed: String
        var resumeID: String
        /// The id replay starts from ("" when the buffer holds none).
        var replayFrom: String
        var gapEvent: Bool
    }

    static func make(retryMilliseconds: Int64, padding: Bool, gaps: [Gap]) -> ByteBuffer {
        var buffer = ByteBuffer()
        SSESerializer.writeRetry(milliseconds: retryMilliseconds, into: &buffer)
        if padding {
            SSESerializer.writeComment(String(repeating: " ", count: 2048), into: &buffer)
        }
        buffer.writeStaticString("\n")
        for gap in gaps {
            let resumeID = StreamPrelude.printable(gap.resumeID)
            SSESerializer.writeComment(
                "gap \(gap.feed): last event id \(resumeID) is not buffered; replaying from \(StreamPrelude.printable(gap.replayFrom))",
                into: &buffer
            )
            buffer.writeStaticString("\n")
            if gap.gapEvent {
                Self.writeGapEvent(feed: gap.feed, lastEventID: gap.resumeID, replayFrom: gap.replayFrom, into: &buffer)
            }
        }
        return buffer
    }

    /// `event: gap` with `{"feed":…,"lastEventId":…,"replayFrom":…}`, without id (it does not move the
    /// browser's resume position).
    static func writeGapEvent(feed: String, lastEventID: String, replayFrom: String, into buffer: inout ByteBuffer) {
        let data =
            "{\"feed\":\(JSONText.string(feed)),\"lastEventId\":\(JSONText.string(lastEventID)),"
            + "\"replayFrom\":\(JSONText.string(replayFrom))}"
        SSESerializer.write(ServerSentEvent(id: nil, type: "gap", data: data), into: &buffer)
    }
}
