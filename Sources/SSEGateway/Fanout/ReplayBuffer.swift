import NIOCore

/// A feed's replay ring: the most recent events, bounded by count, bytes and age, with an index from
/// event id to sequence so that a resume looks up its position without scanning.
///
/// Invariant: `events` holds consecutive sequences (`events[i].sequence == firstSequence + i`).
public struct ReplayBuffer {
    /// What a client resuming from an id gets.
    public enum Resume: Equatable, Sendable {
        /// No resume id: live events only, from after `lastSequence`.
        case live
        /// The id was found: these events follow it.
        case resumed
        /// The id is not in the buffer (too old, or never seen): the whole buffer is replayed.
        case gap
    }

    public struct Lookup: Sendable {
        public var resume: Resume
        public var events: [EncodedEvent]
        /// Sequence of the last event the client is considered to have (replay included).
        public var lastSequence: Int64
        /// The id of the newest event the feed delivered that carries one (set by the feed, whose ring may
        /// hold nothing): a poll without a resume id is sent it, to resume from there.
        public var lastID: String? = nil
    }

    public private(set) var maxEvents: Int
    public private(set) var maxBytes: Int
    public private(set) var maxAge: TimeAmount
    private var events = CircularBuffer<EncodedEvent>()
    private var sequenceByID: [String: Int64] = [:]
    /// The id of the event just before the first one held: the newest event trimmed from the ring (if it
    /// had an id), or the id the ring was started from (`start(after:)`, `prepend`). A client that
    /// stopped exactly there has missed nothing the ring does not still hold, so it is not told of a gap.
    private var base: (id: String, sequence: Int64)?
    /// True once an event has been trimmed: the ring no longer holds everything since it started.
    public private(set) var hasTrimmed = false
    public private(set) var totalBytes = 0
    /// Sequence of the newest event ever appended (0 before the first).
    public private(set) var lastSequence: Int64 = 0

    public init(maxEvents: Int, maxBytes: Int, maxAge: TimeAmount) {
        self.maxEvents = max(0, maxEvents)
        self.maxBytes = max(0, maxBytes)
        self.maxAge = maxAge
    }

    public var count: Int { self.events.count }
    public var isEmpty: Bool { self.events.isEmpty }

    /// Next sequence to give an appended event.
    public var nextSequence: Int64 { self.lastSequence + 1 }

    /// Appends an event whose `sequence` must be `nextSequence`, then trims to the bounds.
    public mutating func append(_ event: EncodedEvent, now: NIODeadline) {
        precondition(
            event.sequence == self.nextSequence,
            "replay sequence out of order: \(event.sequence) after \(self.lastSequence)"
        )
        self.lastSequence = event.sequence
        if self.maxEvents == 0 { return }
        self.events.append(event)
        self.totalBytes += event.storageSize
        if let id = event.id, !id.isEmpty {
            self.sequenceByID[id] = event.sequence
        }
        self.trim(now: now)
    }

    /// New bounds (a config reload); the events that still fit stay.
    public mutating func rebound(maxEvents: Int, maxBytes: Int, maxAge: TimeAmount, now: NIODeadline) {
        self.maxEvents = max(0, maxEvents)
        self.maxBytes = max(0, maxBytes)
        self.maxAge = maxAge
        self.trim(now: now)
        if self.maxEvents == 0 {
            while !self.events.isEmpty { self.removeFirst() }
        }
    }

    /// Drops events beyond any bound; the newest event is kept even if alone it exceeds `maxBytes`,
    /// so a client resuming right behind it is not told of a gap.
    public mutating func trim(now: NIODeadline) {
        let oldestAllowed = now - self.maxAge
        while let first = self.events.first,
            self.events.count > self.maxEvents
                || (self.totalBytes > self.maxBytes && self.events.count > 1)
                || first.receivedAt < oldestAllowed
        {
            self.removeFirst()
        }
    }

    private mutating func removeFirst() {
        let first = self.events.removeFirst()
        self.totalBytes -= first.storageSize
        self.hasTrimmed = true
        if let id = first.id, !id.isEmpty {
            self.base = (id, first.sequence)
        } else {
            self.base = nil
        }
        if let id = first.id, !id.isEmpty, self.sequenceByID[id] == first.sequence {
            self.sequenceByID.removeValue(forKey: id)
        }
    }

    /// What a client that last saw `lastEventID` should get. `nil` or "" means no resume id.
    public mutating func lookup(after lastEventID: String?, now: NIODeadline) -> Lookup {
        self.trim(now: now)
        guard let lastEventID, !lastEventID.isEmpty else {
            return Lookup(resume: .live, events: [], lastSequence: self.lastSequence)
        }
        if let sequence = self.sequenceByID[lastEventID], let first = self.events.first {
            let start = Int(sequence - first.sequence) + 1
            let slice = self.events[self.events.index(self.events.startIndex, offsetBy: start)...]
            return Lookup(resume: .resumed, events: Array(slice), lastSequence: self.lastSequence)
        }
        if let base = self.base, base.id == lastEventID, base.sequence == self.firstSequence - 1 {
            return Lookup(resume: .resumed, events: Array(self.events), lastSequence: self.lastSequence)
        }
        return Lookup(resume: .gap, events: Array(self.events), lastSequence: self.lastSequence)
    }

    /// Sequence of the oldest event held (`nextSequence` when empty).
    public var firstSequence: Int64 { self.events.first?.sequence ?? (self.lastSequence + 1) }

    /// The id the ring starts after, while nothing has been trimmed: a client holding it resumes with
    /// everything the ring holds.
    public var startID: String? {
        guard !self.hasTrimmed, let base = self.base, base.sequence == self.firstSequence - 1 else { return nil }
        return base.id
    }

    /// Whether an event with this id is held.
    public func holds(_ id: String) -> Bool { self.sequenceByID[id] != nil }

    /// The id of the newest held event that carries one.
    public var newestID: String? {
        self.events.last(where: { $0.id.map { !$0.isEmpty } ?? false })?.id
    }

    /// Marks an empty ring as starting after `id` (the upstream was asked to resume from there), so a
    /// client holding `id` resumes without a gap.
    public mutating func start(after id: String) {
        precondition(self.events.isEmpty && !self.hasTrimmed, "start(after:) on a ring that has held events")
        self.base = (id, self.lastSequence)
    }

    /// The ring no longer starts right after its start id (the upstream, asked to resume after it, did
    /// not): a client holding that id is told of a gap like any other it does not hold.
    public mutating func forgetStart() {
        self.base = nil
    }

    /// Puts older events in front of the ring (the upstream was asked to resume from an older id than
    /// the ring starts after): their sequences are the ones just below `firstSequence`, oldest first,
    /// and `base` is the id they follow. Trims to the bounds afterwards (the oldest go first). Refused
    /// (false) once the ring has trimmed: the events would no longer join up with what it holds.
    @discardableResult
    public mutating func prepend(_ older: [EncodedEvent], after base: String?, now: NIODeadline) -> Bool {
        guard !self.hasTrimmed, self.maxEvents > 0 else { return false }
        var expected = self.firstSequence - Int64(older.count)
        for event in older {
            precondition(
                event.sequence == expected,
                "prepended sequence out of order: \(event.sequence), expected \(expected)"
            )
            expected += 1
        }
        for event in older.reversed() {
            self.events.prepend(event)
            self.totalBytes += event.storageSize
            if let id = event.id, !id.isEmpty, self.sequenceByID[id] == nil {
                self.sequenceByID[id] = event.sequence
            }
        }
        self.base = base.map { ($0, self.firstSequence - 1) }
        self.trim(now: now)
        return true
    }

    /// The id of the first event held, if it carries one (nil if it has none, or the ring is empty).
    public var firstID: String? {
        guard let id = self.events.first?.id, !id.isEmpty else { return nil }
        return id
    }

    /// The id of the oldest event in the buffer that carries one, for the gap's `Last-Event-ID` header.
    public var oldestID: String? {
        self.events.first(where: { $0.id.map { !$0.isEmpty } ?? false })?.id
    }
}
