/// Tells which feed of a multi-feed stream (`/multi?feed=/a&feed=/b`) each event came from, and follows
/// each feed's `"seq":` numbers on their own, so that feeds interleaving (or carrying the same numbers)
/// are no gaps and no duplicates.
///
/// The stream's ids are composite: `m1:` and each feed's last id in request order, separated by `,`
/// (see the README, "Several feeds on one page"). An event with an id changes its own feed's part only,
/// so the part that differs from the previous composite id names the feed. The parts are compared as
/// sent (percent-encoded), which is enough to tell them apart. An event without an id, with an id that is
/// not composite, or that changes no part or several (a resumed stream's first event can), is
/// unattributed: counted, but not in any feed's numbers.
struct MultiFeedTracker: Sendable, Equatable {
    enum Attribution: Sendable, Equatable {
        /// Feed `index` (request order) sent it; `step` is what its seq number says within that feed.
        case feed(index: Int, step: SeqTracker.Step)
        case unattributed
    }

    static let prefix = "m1:"

    /// The parts of the last composite id, empty before the first.
    private(set) var parts: [Substring] = []
    private var seqs: [SeqTracker] = []

    mutating func record(id: String?, seq: Int64) -> Attribution {
        guard let id, id.hasPrefix(Self.prefix) else { return .unattributed }
        let parts = id.dropFirst(Self.prefix.count).split(separator: ",", omittingEmptySubsequences: false)
        if parts.count != self.parts.count {
            // The first composite id (or another number of feeds): compare with "nothing seen yet".
            self.parts = Array(repeating: "", count: parts.count)
            self.seqs = Array(repeating: SeqTracker(), count: parts.count)
        }
        var changed: Int?
        var changes = 0
        for index in parts.indices where parts[index] != self.parts[index] {
            changed = index
            changes += 1
        }
        self.parts = parts
        guard changes == 1, let index = changed else { return .unattributed }
        return .feed(index: index, step: self.seqs[index].record(seq))
    }
}
