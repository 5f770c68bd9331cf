/// What happened when, in 100 ms buckets from the start of the run: connection attempts, streams opened
/// (200 heads), `503` refusals and disconnects. The loops keep their own (no locks) and the runner adds
/// them up; the peaks over any one second are what a reconnect storm is judged by.
public struct BenchTimeline: Sendable, Equatable {
    /// What a bucket counts.
    public enum Kind: Int, Sendable, CaseIterable {
        case connects
        case opens
        case refusals
        case disconnects
    }

    public static let bucketMicros: Int64 = 100_000
    /// Buckets in one second.
    public static let bucketsPerSecond = 10

    /// `BenchClock.nowMicros` of bucket 0, the same for every loop of a run (0: the first record's).
    public private(set) var originMicros: Int64
    /// Counts by kind, then by bucket.
    private var counts: [[Int]] = Array(repeating: [], count: Kind.allCases.count)

    public init(originMicros: Int64) {
        self.originMicros = originMicros
    }

    /// Counts one at `micros`. A timeline made without an origin (0) takes its first record's time.
    mutating func record(_ kind: Kind, at micros: Int64) {
        if self.originMicros == 0 { self.originMicros = micros }
        let bucket = Int(max(0, micros - self.originMicros) / Self.bucketMicros)
        if self.counts[kind.rawValue].count <= bucket {
            self.counts[kind.rawValue] += Array(repeating: 0, count: bucket + 1 - self.counts[kind.rawValue].count)
        }
        self.counts[kind.rawValue][bucket] += 1
    }

    /// `self` plus `other`, whose origin must be the same (or `self`'s 0: an empty sum takes `other`'s).
    mutating func add(_ other: BenchTimeline) {
        if self.originMicros == 0 { self.originMicros = other.originMicros }
        for kind in Kind.allCases {
            let theirs = other.counts[kind.rawValue]
            if self.counts[kind.rawValue].count < theirs.count {
                self.counts[kind.rawValue] += Array(
                    repeating: 0,
                    count: theirs.count - self.counts[kind.rawValue].count
                )
            }
            for (bucket, count) in theirs.enumerated() { self.counts[kind.rawValue][bucket] += count }
        }
    }

    /// The 100 ms buckets of one kind, from the origin.
    public func buckets(_ kind: Kind) -> [Int] { self.counts[kind.rawValue] }

    /// The most in any 1 s (ten consecutive buckets, sliding) and when that second started, seconds from
    /// the origin.
    public func peakPerSecond(_ kind: Kind) -> (count: Int, atSeconds: Double) {
        let buckets = self.counts[kind.rawValue]
        var best = (count: 0, atSeconds: 0.0)
        var sum = 0
        for (index, count) in buckets.enumerated() {
            sum += count
            if index >= Self.bucketsPerSecond { sum -= buckets[index - Self.bucketsPerSecond] }
            if sum > best.count {
                best = (sum, Double(max(0, index + 1 - Self.bucketsPerSecond)) / Double(Self.bucketsPerSecond))
            }
        }
        return best
    }

    /// The most in any one 100 ms bucket.
    public func peakPerBucket(_ kind: Kind) -> Int { self.counts[kind.rawValue].max() ?? 0 }

    /// Whole seconds from the origin: the sum of each second's ten buckets.
    public func perSecond(_ kind: Kind) -> [Int] {
        let buckets = self.counts[kind.rawValue]
        return stride(from: 0, to: buckets.count, by: Self.bucketsPerSecond).map {
            buckets[$0..<min($0 + Self.bucketsPerSecond, buckets.count)].reduce(0, +)
        }
    }
}
