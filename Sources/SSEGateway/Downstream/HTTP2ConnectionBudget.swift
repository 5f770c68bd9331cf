import NIOCore

/// What one HTTP/2 client may send without making progress, judged from frame headers alone. A plain
/// value: `HTTP2FloodGuard` feeds it the headers of the frames each way and carries out its verdicts.
///
/// - Frames that cost the server work but move no request forward (WINDOW_UPDATE, GOAWAY, and frame
///   types the gateway ignores) are held to Envoy's rule (`max_inbound_window_update_frames_per_data_frame_sent`,
///   default 10): per 10-second epoch at most `5 + 2 × (streams opened + 10 × DATA frames sent)`, counting
///   the streams and DATA of this epoch and the one before.
///   A client grants window only for data it received, so a real one stays far below this; a flood of
///   WINDOW_UPDATEs crosses it within a few frames. SwiftNIO already limits PING, SETTINGS, PRIORITY,
///   RST_STREAM, empty DATA and CONTINUATION floods itself; it does not count WINDOW_UPDATE.
/// - A stream the client ends before the gateway answered it (sent its response HEADERS, or a RST_STREAM
///   of its own) and within a moment of opening it (the current or the previous one-second window,
///   `RecentStreams`) ends prematurely, Envoy's "premature reset": by a RST_STREAM, the shape of the
///   HTTP/2 rapid reset attack (CVE-2023-44487), or by closing the connection under it. The guard charges
///   each to the listener's budget (`ListenerResetBudget`). A stream that got its response headers is an
///   ordinary client leaving (a closed tab), whenever it ends.
struct HTTP2ConnectionBudget {
    enum Verdict: Equatable {
        case proceed
        /// The client reset a stream it had just opened, before the gateway answered it.
        case prematureReset
        /// Over the no-progress allowance: GOAWAY (ENHANCE_YOUR_CALM) and close.
        case tooManyNoProgressFrames
    }

    /// Envoy's default for `max_inbound_window_update_frames_per_data_frame_sent`.
    static let noProgressFramesPerDataFrame = 10

    /// The counts of the current `epoch`; the allowance also takes the previous epoch's streams and DATA
    /// (a WINDOW_UPDATE answers data sent a moment before), so a long connection banks no allowance that
    /// a flood could spend later (an hour of SSE at 10 events/s would have banked ~90 M frames).
    private(set) var noProgressFrames = 0
    private(set) var streamsOpened = 0
    private(set) var dataFramesSent = 0
    private var previousStreamsOpened = 0
    private var previousDataFramesSent = 0
    private var epochStart: NIODeadline?
    static let epoch = TimeAmount.seconds(10)
    /// The highest stream id the client opened.
    private(set) var lastStreamID: UInt32 = 0
    private var recent = RecentStreams()
    /// Client streams the gateway has not answered (no HEADERS or RST_STREAM sent on them) and the client
    /// has not reset: those a close would end prematurely. SwiftNIO refuses streams beyond
    /// SETTINGS_MAX_CONCURRENT_STREAMS with a RST_STREAM (which answers them), so this holds about that
    /// many at most; ids no longer recent are pruned should it grow past `unansweredPruneCount` anyway.
    private var unanswered = Set<UInt32>()
    static let unansweredPruneCount = 1024

    var noProgressAllowance: Int {
        let streams = self.streamsOpened + self.previousStreamsOpened
        let data = self.dataFramesSent + self.previousDataFramesSent
        return 5 + 2 * (streams + Self.noProgressFramesPerDataFrame * data)
    }

    /// Starts a new epoch when the current one is over: this epoch's counts become the previous ones.
    private mutating func advance(to now: NIODeadline) {
        guard let start = self.epochStart else {
            self.epochStart = now
            return
        }
        guard now - start >= Self.epoch else { return }
        let skipped = now - start >= Self.epoch + Self.epoch
        self.previousStreamsOpened = skipped ? 0 : self.streamsOpened
        self.previousDataFramesSent = skipped ? 0 : self.dataFramesSent
        self.streamsOpened = 0
        self.dataFramesSent = 0
        self.noProgressFrames = 0
        self.epochStart = now
    }

    /// A frame header from the client.
    mutating func received(_ header: HTTP2FrameHeaderScanner.Header, now: NIODeadline) -> Verdict {
        typealias FrameType = HTTP2FrameHeaderScanner.FrameType
        self.advance(to: now)
        switch header.type {
        case FrameType.headers:
            // A HEADERS frame on a new (higher, client-initiated) id opens a stream; one on an open stream
            // carries trailers.
            if header.streamID > self.lastStreamID && header.streamID & 1 == 1 {
                self.lastStreamID = header.streamID
                self.streamsOpened += 1
                self.recent.opened(header.streamID, now: now)
                self.unanswered.insert(header.streamID)
                if self.unanswered.count > Self.unansweredPruneCount {
                    self.unanswered = self.unanswered.filter { self.recent.isRecent($0) }
                }
            }
            return .proceed
        case FrameType.rstStream:
            let wasUnanswered = self.unanswered.remove(header.streamID) != nil
            return wasUnanswered && self.recent.contains(header.streamID, now: now) ? .prematureReset : .proceed
        case FrameType.windowUpdate, FrameType.goAway:
            return self.countNoProgressFrame()
        case let type where type > FrameType.continuation:
            return self.countNoProgressFrame()
        default:
            return .proceed
        }
    }

    /// A frame header the gateway sent.
    mutating func sent(_ header: HTTP2FrameHeaderScanner.Header) {
        typealias FrameType = HTTP2FrameHeaderScanner.FrameType
        switch header.type {
        case FrameType.data:
            self.dataFramesSent += 1
        case FrameType.headers, FrameType.rstStream:
            // The response head (or a refusal): the stream is answered.
            self.unanswered.remove(header.streamID)
        default:
            break
        }
    }

    /// The connection closed: the streams this ends prematurely, among those the HTTP/2 handler was given
    /// (ids up to `lastForwarded`; a read the guard dropped cost the gateway nothing).
    mutating func prematureEndsAtClose(through lastForwarded: UInt32, now: NIODeadline) -> Int {
        self.recent.advance(to: now)
        return self.unanswered.count { $0 <= lastForwarded && self.recent.isRecent($0) }
    }

    private mutating func countNoProgressFrame() -> Verdict {
        self.noProgressFrames += 1
        return self.noProgressFrames > self.noProgressAllowance ? .tooManyNoProgressFrames : .proceed
    }
}

/// Which of a connection's streams were opened recently, in O(1) space: client stream ids only grow, so
/// the streams opened since a moment are exactly those at or above the first id opened after it. Time is
/// cut into one-second windows; a stream is recent when it was opened in the current or the previous
/// window (so between one and two seconds ago at most).
struct RecentStreams {
    static let window = TimeAmount.seconds(1)

    private var windowStart = NIODeadline.uptimeNanoseconds(0)
    private var firstInCurrent: UInt32?
    private var firstInPrevious: UInt32?

    mutating func opened(_ id: UInt32, now: NIODeadline) {
        self.advance(to: now)
        if self.firstInCurrent == nil { self.firstInCurrent = id }
    }

    mutating func contains(_ id: UInt32, now: NIODeadline) -> Bool {
        self.advance(to: now)
        return self.isRecent(id)
    }

    /// Whether `id` was opened in the current or the previous window as of the last `advance`.
    func isRecent(_ id: UInt32) -> Bool {
        guard let first = self.firstInPrevious ?? self.firstInCurrent else { return false }
        return id >= first
    }

    mutating func advance(to now: NIODeadline) {
        let elapsed = now - self.windowStart
        if elapsed >= Self.window + Self.window {
            self.firstInPrevious = nil
            self.firstInCurrent = nil
            self.windowStart = now
        } else if elapsed >= Self.window {
            self.firstInPrevious = self.firstInCurrent
            self.firstInCurrent = nil
            self.windowStart = self.windowStart + Self.window
        }
    }
}
