import NIOCore

/// A feed's replay ring: the most recent events, bounded by count, bytes and age, with an index from
/// event id to sequence so that a resume looks up its position without scanning.
///
/// Invariant: `events` holds consecutive sequences (`events[i].sequence == firstSequence + i`).
public struct ReplayBuffer {
    /// What a client resuming from an id gets.
    public enum Resume: Equatable {
        /// No resume id: live events only, from after `lastSequence`.
        case live
        /// The id was found: these events follow it.
        case resumed
        /// The id is not in the buffer (too old, or never seen): the whole buffer is replayed.
        case gap
    }

    public struct Lookup {
        public var resume: Resume
        public var events: [EncodedEvent]
        /// Sequence of the last event the client is considered to have (replay included).
        public var lastSequence: Int64
    }

    public private(set) var maxEvents: Int
    public private(set) var maxBytes: Int
    public private(set) var maxAge: TimeAmount
    private var events = CircularBuffer<EncodedEvent>()
    private var sequenceByID: [String: Int64] = [:]
    /// The newest event trimmed from the ring, if it had an id: a client that stopped exactly there has
    /// missed nothing the ring does not still hold, so it is not told of a gap.
    private var lastTrimmed: (id: String, sequence: Int64)?
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
        precondition(event.sequence == self.nextSequence, "replay sequence out of order: \(event.sequence) after \(self.lastSequence)")
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
        if let id = first.id, !id.isEmpty {
            self.lastTrimmed = (id, first.sequence)
        } else {
            self.lastTrimmed = nil
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
        let firstHeld = self.events.first?.sequence ?? (self.lastSequence + 1)
        if let trimmed = self.lastTrimmed, trimmed.id == lastEventID, trimmed.sequence == firstHeld - 1 {
            return Lookup(resume: .resumed, events: Array(self.events), lastSequence: self.lastSequence)
        }
        return Lookup(resume: .gap, events: Array(self.events), lastSequence: self.lastSequence)
    }

    /// The id of the oldest event in the buffer that carries one, for the gap's `Last-Event-ID` header.
    public var oldestID: String? {
        self.events.first(where: { $0.id.map { !$0.isEmpty } ?? false })?.id
    }
}
