import SSE

/// Moving the start of a feed's replay ring back to an older id, as a value without I/O.
///
/// After a restart a feed's ring starts after the id of the first client that joined (the upstream was
/// asked to resume from there). A client that held an older id would miss the events in between, so the
/// feed reconnects its upstream from that older id (`begin`). The new stream then carries, in order:
/// the events the ring lacks (collected here until the stream reaches the id the ring starts after, or
/// any id the ring holds), then again the events the ring already holds (dropped, up to the newest one
/// it holds), then new events (passed on). Ids are opaque strings, matched, not compared, except when
/// they are integers: then an id newer than the ring's newest is known to be live, and one no newer to
/// be history. A ring with no known start (`ringStart` nil) ends the collection at its first held id.
struct ReplayRebase {
    enum State: Equatable {
        case idle
        /// Reconnected from `from`; `prefix` holds the events before the ring's start seen so far.
        /// `prefixBase` is the id `prefix` follows (`from`, or the newest one dropped over `limit`).
        case collecting(from: String, ringStart: String?, prefix: [ServerSentEvent], prefixBase: String?)
        /// The prefix is in place; the stream replays what the ring holds: dropped up to `lastHeld`.
        case skipping(lastHeld: String)
    }

    /// What the feed does with one batch from the upstream.
    struct Output: Equatable {
        /// Events to put in front of the ring, and the id they follow (nil: not known).
        var prepend: (events: [ServerSentEvent], after: String?)?
        /// New events, handled as usual.
        var append: [ServerSentEvent] = []
        /// The collection ended in this batch (with `prepend`, or without anything to put in front): the
        /// clients waiting for it are answered.
        var ended = false

        static func == (lhs: Output, rhs: Output) -> Bool {
            lhs.prepend?.events == rhs.prepend?.events && lhs.prepend?.after == rhs.prepend?.after
                && lhs.append == rhs.append
                && lhs.ended == rhs.ended
        }
    }

    private(set) var state = State.idle
    /// At most this many events are collected (the ring's `max_events`): older ones would be trimmed
    /// at once anyway, and a backend replaying a long history must not grow the gateway without bound.
    let limit: Int

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    var isCollecting: Bool {
        if case .collecting = self.state { return true }
        return false
    }

    /// The upstream is reconnecting from `from`; the ring starts after `ringStart` (nil: it starts at
    /// its first held event).
    mutating func begin(from: String, ringStart: String?) {
        self.state = .collecting(from: from, ringStart: ringStart, prefix: [], prefixBase: from)
    }

    /// One batch from the upstream. `holds` says whether the ring holds an event with that id;
    /// `newestHeld` is the newest id it holds (nil if none).
    mutating func received(_ events: [ServerSentEvent], holds: (String) -> Bool, newestHeld: String?) -> Output {
        var output = Output()
        for event in events {
            switch self.state {
            case .idle:
                output.append.append(event)
            case .collecting(let from, let ringStart, var prefix, var prefixBase):
                // Released first, so that `prefix` is the only reference and appends happen in place (a
                // copy per event made collecting a long history quadratic on the feed's loop).
                self.state = .idle
                let id = event.id ?? ""
                if let number = Int(id), let newest = newestHeld.flatMap({ Int($0) }), number > newest {
                    // Newer than anything the ring holds: a backend that ignored Last-Event-ID, or a stream
                    // past the ring already. What was collected goes in front; this event and the rest are
                    // new, delivered at once.
                    if !prefix.isEmpty { output.prepend = (prefix, prefixBase) }
                    output.ended = true
                    output.append.append(event)
                    continue
                }
                let reachedStart = !id.isEmpty && id == ringStart
                let reachedHeld = !id.isEmpty && holds(id)
                if reachedStart || !reachedHeld {
                    prefix.append(event)
                    if prefix.count > self.limit {
                        prefixBase = prefix.removeFirst().id
                    }
                }
                guard reachedStart || reachedHeld else {
                    self.state = .collecting(from: from, ringStart: ringStart, prefix: prefix, prefixBase: prefixBase)
                    continue
                }
                output.prepend = (prefix, prefixBase)
                output.ended = true
                if let newestHeld, !(reachedHeld && id == newestHeld) {
                    self.state = .skipping(lastHeld: newestHeld)
                } else {
                    self.state = .idle
                }
            case .skipping(let lastHeld):
                let id = event.id ?? ""
                if id == lastHeld {
                    self.state = .idle
                } else if !id.isEmpty && !holds(id) {
                    // The replay does not match what the ring holds: pass everything on from here rather
                    // than risk dropping a new event.
                    self.state = .idle
                    output.append.append(event)
                }
            }
        }
        return output
    }

    /// The stream never reached the ring's start in time. What was collected cannot be placed (ids are
    /// opaque): it is returned to be delivered as new events, since a backend that ignores Last-Event-ID
    /// sends exactly that, and dropping it would take live events from every client. With integer ids
    /// it is known to be history when its newest id is at most `newestHeld` (a newer one would have
    /// ended the collection): nothing is returned then, as every client streaming already had those
    /// events or is past them (a backend that went down in the middle of its replay).
    mutating func giveUp(newestHeld: String? = nil) -> [ServerSentEvent] {
        defer { self.state = .idle }
        guard case .collecting(_, _, let prefix, _) = self.state else { return [] }
        if let newest = newestHeld.flatMap({ Int64($0) }),
            let last = prefix.last(where: { !($0.id ?? "").isEmpty })?.id.flatMap({ Int64($0) }),
            last <= newest
        {
            return []
        }
        return prefix
    }

    /// The upstream went away (feed closed or reloaded): forget the rebase.
    mutating func cancel() {
        self.state = .idle
    }
}
