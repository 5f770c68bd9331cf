import struct Histogram.Histogram

/// What the clients of the load tool have seen so far, summed: kept per event loop (touched only on its
/// loop, no locks) and added up when the bench reads progress or the result.
public struct BenchTally: Sendable {
    /// Clients streaming now (a 200 head, not closed since).
    public var connected = 0
    /// HTTP/2 streams that could not be opened (whole connections that fail are counted by the runner).
    public var streamOpenErrors = 0
    public var badStatus = 0
    /// Clients that had a 200 head and were closed or reset since (evictions, server restarts, GOAWAY).
    public var disconnects = 0
    /// HTTP/2 streams the server reset (RST_STREAM); each is also a disconnect.
    public var resets = 0
    /// Clients whose body broke the framing (chunked, gzip) or whose head was malformed; closed.
    public var protocolErrors = 0
    /// Clients that sent the request and are still waiting for the response head.
    public var awaitingHead = 0
    /// Clients closed after sending the request and before any response head.
    public var closedBeforeHead = 0
    /// Events with a `"seq":` number.
    public var events = 0
    /// Body bytes as received (after de-chunking, before inflating).
    public var bytes = 0
    /// Events the origin's `seq` numbering says a client never got.
    public var missing = 0
    /// Events whose `seq` a client had already got (per feed on a multi-feed stream).
    public var duplicates = 0
    /// The first few places where events went missing, over the whole run (`missingSampleLimit`): what the
    /// client had asked for and what came, so a loss can be matched with the gateway's access log.
    public var missingSamples: [String] = []
    static let missingSampleLimit = 20
    /// Poll responses read to their end (`--poll`).
    public var polls = 0
    /// Events of a multi-feed stream (`--multi`) by feed, in request order.
    public var feedEvents: [Int] = []
    /// Events of a multi-feed stream that no composite id ties to one feed.
    public var unattributed = 0
    /// Reconnect mode: attempts after each client's first (after a close, a refusal or a failed connect).
    public var reconnects = 0
    /// Reconnect mode: `503` answers (load shed by the server or the balancer); not in `badStatus`.
    public var refusals = 0
    /// Reconnect mode: connects that failed (refused, timed out), each retried.
    public var connectFailures = 0
    /// Reconnect mode: times a client lost its stream (a close after a 200), counted once per outage.
    public var outages = 0
    /// Reconnect mode: clients that lost their stream and have had no event since.
    public var inOutage = 0
    /// Reconnect mode: the first close of a stream (`BenchClock.nowMicros`), 0 before any.
    public var firstDisconnectMicros: Int64 = 0
    /// Reconnect mode: the latest end of an outage (the first event after it), 0 before any.
    public var lastRecoveryMicros: Int64 = 0
    /// Reconnect mode: the longest time one client went from its close to its next event, µs.
    public var longestOutageMicros: Int64 = 0
    /// Connects, opens, refusals and disconnects in 100 ms buckets.
    public var timeline = BenchTimeline(originMicros: 0)
    /// Clients that got a 200 head (streams opened), over the whole run.
    public var opened = 0
    /// When the latest of those heads arrived (`BenchClock.nowMicros`), 0 before the first.
    public var lastOpenMicros: Int64 = 0
    /// Request sent to 200 head, µs, per opened stream.
    public var openMicros = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    /// A later poll's request to its response head, µs: how long the server held it (`--poll`).
    public var pollWaitMicros = Histogram<UInt64>(
        highestTrackableValue: 60_000_000,
        numberOfSignificantValueDigits: .three
    )
    /// Origin-to-client latency from each event's `"ts":`, µs.
    public var latencyMicros = Histogram<UInt64>(
        highestTrackableValue: 60_000_000,
        numberOfSignificantValueDigits: .three
    )

    public init() {}

    /// `self` plus `other`, histograms merged.
    mutating func add(_ other: BenchTally) {
        self.connected += other.connected
        self.streamOpenErrors += other.streamOpenErrors
        self.badStatus += other.badStatus
        self.disconnects += other.disconnects
        self.resets += other.resets
        self.protocolErrors += other.protocolErrors
        self.awaitingHead += other.awaitingHead
        self.closedBeforeHead += other.closedBeforeHead
        self.events += other.events
        self.bytes += other.bytes
        self.missing += other.missing
        self.duplicates += other.duplicates
        self.missingSamples += other.missingSamples.prefix(max(0, Self.missingSampleLimit - self.missingSamples.count))
        self.polls += other.polls
        if self.feedEvents.count < other.feedEvents.count {
            self.feedEvents += Array(repeating: 0, count: other.feedEvents.count - self.feedEvents.count)
        }
        for (index, count) in other.feedEvents.enumerated() { self.feedEvents[index] += count }
        self.unattributed += other.unattributed
        self.reconnects += other.reconnects
        self.refusals += other.refusals
        self.connectFailures += other.connectFailures
        self.outages += other.outages
        self.inOutage += other.inOutage
        if other.firstDisconnectMicros > 0 {
            self.firstDisconnectMicros =
                self.firstDisconnectMicros == 0
                ? other.firstDisconnectMicros : min(self.firstDisconnectMicros, other.firstDisconnectMicros)
        }
        self.lastRecoveryMicros = max(self.lastRecoveryMicros, other.lastRecoveryMicros)
        self.longestOutageMicros = max(self.longestOutageMicros, other.longestOutageMicros)
        self.timeline.add(other.timeline)
        self.opened += other.opened
        self.lastOpenMicros = max(self.lastOpenMicros, other.lastOpenMicros)
        self.openMicros.add(other.openMicros)
        self.latencyMicros.add(other.latencyMicros)
        self.pollWaitMicros.add(other.pollWaitMicros)
    }

    /// Notes where events went missing, while fewer than `missingSampleLimit` are held.
    mutating func sampleMissing(_ description: @autoclosure () -> String) {
        guard self.missingSamples.count < Self.missingSampleLimit else { return }
        self.missingSamples.append(description())
    }

    /// Clients that were connected and asked, but have no response head: waiting still, or closed without one.
    public var noResponse: Int { self.awaitingHead + self.closedBeforeHead }
}
