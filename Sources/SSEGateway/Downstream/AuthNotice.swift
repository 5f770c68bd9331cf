import Foundation
import NIOCore
import SSE

/// The two events a stream with an expiring credential gets (SPEC §6): typed events, so a page listens for
/// them with `addEventListener`, without an `id:` (they do not move the browser's resume position).
enum AuthNotice {
    /// `event: auth-expiring`, `data: {"expiresAt":"2026-11-30T06:00:00Z","expiresIn":30}`: time to fetch a new
    /// token (and, for a cookie, to set it: the browser's automatic reconnect then carries it).
    static func expiring(at expiry: Date, now: Date) -> ByteBuffer {
        let seconds = max(0, Int((expiry.timeIntervalSince(now)).rounded(.up)))
        let data = "{\"expiresAt\":\(JSONText.string(Self.timestamp(expiry))),\"expiresIn\":\(seconds)}"
        return Self.event("auth-expiring", data: data)
    }

    /// `event: auth-expired`, `data: {"lastEventId":"42"}` (null before any id): the stream ends now; a new
    /// connection with a fresh credential and that id resumes without a gap.
    static func expired(lastEventID: String?) -> ByteBuffer {
        let id = lastEventID.map(JSONText.string) ?? "null"
        return Self.event("auth-expired", data: "{\"lastEventId\":\(id)}")
    }

    private static func event(_ type: String, data: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        SSESerializer.write(ServerSentEvent(id: nil, type: type, data: data), into: &buffer)
        return buffer
    }

    /// RFC 3339 in UTC, whole seconds (what JavaScript's `Date.parse` reads).
    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}
