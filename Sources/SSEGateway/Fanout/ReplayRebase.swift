import SSE

/// Moving the start of a feed's replay ring back to an older id, as a value without I/O.
///
/// After a restart a feed's ring starts after the id of the first client that joined (the upstream was
/// asked to resume from there). A client that held an older id would miss the events in between, so the
/// feed reconnects its upstream from that older id (`begin`). The new stream then carries, in order:
/// the events the ring lacks (collected here until the stream reaches the id the ring starts after, or
/// any id the ring holds), then again the events the ring already holds (dropped, up to the newest one
/// it holds), then new events (passed on). Ids are opaque strings: nothing here compares them, it
/// only matches them.
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

        static func == (lhs: Output, rhs: Output) -> Bool {
            lhs.prepend?.events == rhs.prepend?.events && lhs.prepend?.after == rhs.prepend?.after && lhs.append == rhs.append
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
                let id = event.id ?? ""
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

    /// The stream never reached the ring's start in time: what was collected is dropped (it cannot be
    /// told apart from new events without comparing ids); the feed resumes the upstream from the ring.
    mutating func giveUp() {
        self.state = .idle
    }

    /// The upstream went away (feed closed or reloaded): forget the rebase.
    mutating func cancel() {
        self.state = .idle
    }
}
