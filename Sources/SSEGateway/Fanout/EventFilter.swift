/// The event types a client asked for with `?event=price&event=trade`: only those reach it.
///
/// The fan-out still writes the feed's shared buffers; a filtered client only skips the ones whose type
/// it did not ask for, so filtering costs no copy and no parsing (the type travels with the encoded
/// event, `EncodedEvent.eventType`). A client that asked for no type has no filter (`nil`), not an empty one.
///
/// What a filtered client always gets, whatever its types: id-only blocks (an `id:` without data: the
/// browser fires nothing for them, but they move its resume position past the events it skipped, so a
/// reconnect after a long run of other types does not replay that run) and the gateway's own notices
/// (keepalives, gap signals, `auth-expiring`, `auth-expired`), which are not events of the feed. An idle
/// filtered client that skipped events gets, in place of a keepalive comment, an id-only block of its own
/// naming the newest of them (`FeedShard.positionMark`): once per keepalive at most, never per event.
struct EventFilter: Sendable, Equatable {
    /// The type names asked for, each once, in the order asked; an untyped event is `message`. A list,
    /// not a set: a client asks for a few types, and comparing a few short strings is cheaper than hashing.
    let types: [String]

    /// At most this many distinct types per request.
    static let maxTypes = 32
    /// At most this many bytes per type name (UTF-8, after percent-decoding).
    static let maxTypeLength = 128

    /// Why a request's `event=` values were refused (a 400 with `message`).
    struct Refusal: Error, Equatable {
        var message: String
    }

    init(types: [String]) {
        var distinct: [String] = []
        for type in types where !distinct.contains(type) { distinct.append(type) }
        self.types = distinct
    }

    /// The filter of a request's query: every `event=` value (repeated, percent-decoded, `+` as a space;
    /// an empty value means `message`, as an empty `event:` field does). Nil when the query has none.
    init?(query: Substring) throws(Refusal) {
        var types: [String] = []
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == "event" else { continue }
            var name = parts.count > 1 ? Self.percentDecode(parts[1]) : ""
            if name.isEmpty { name = "message" }
            guard name.utf8.count <= Self.maxTypeLength else {
                throw Refusal(message: "an event type in ?event= is longer than \(Self.maxTypeLength) bytes")
            }
            guard !name.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
                // No `event:` field can hold one, so such a type could never match: a mistake worth saying.
                throw Refusal(message: "an event type in ?event= contains a line break or NUL")
            }
            guard !types.contains(name) else { continue }
            guard types.count < Self.maxTypes else {
                throw Refusal(message: "at most \(Self.maxTypes) event types may be asked for with ?event=")
            }
            types.append(name)
        }
        guard !types.isEmpty else { return nil }
        self.types = types
    }

    /// Whether a client with this filter gets `event`: its type was asked for, or it is an id-only block.
    @inline(__always)
    func admits(_ event: EncodedEvent) -> Bool {
        guard event.hasData else { return true }
        return self.types.contains(event.eventType ?? "message")
    }

    /// A join's replay as this client gets it: only the events it admits. `lastSequence` stays the same:
    /// the client is past the events it skipped too.
    func apply(to lookup: ReplayBuffer.Lookup) -> ReplayBuffer.Lookup {
        var filtered = lookup
        filtered.events = lookup.events.filter(self.admits)
        return filtered
    }

    private static func percentDecode(_ text: Substring) -> String {
        guard let bytes = PercentDecoding.bytes(text, plusAsSpace: true) else { return String(text) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
