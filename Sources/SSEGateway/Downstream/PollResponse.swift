import NIOCore

/// The life of one poll response (SPEC §6a), without I/O: answer at once when the join had something to
/// send, else wait up to `timeout` for a batch, then `gather` for more, then answer. `PollExchange` owns it
/// and carries out its actions; the tests drive it as a plain value.
///
/// The gather timer always runs, even when `gather` is zero: a batch arrives inside the shard's pass over
/// its clients, and answering there would remove a client from the shard it is iterating.
struct PollResponse {
    enum State: Equatable {
        /// Asked the feed for the replay.
        case joining
        /// Nothing to send yet; the timeout runs.
        case waiting
        /// A batch arrived; the gather timer runs.
        case gathering
        /// Answered, or the client left.
        case done
    }

    enum Action: Equatable {
        /// Stop the timers, leave the shard, send the response.
        case answer
        case armTimeout(TimeAmount)
        /// Cancel the timeout and arm the gather timer.
        case armGather(TimeAmount)
        /// Stop the timers and leave the shard, without a response (the client is gone).
        case release
        case none
    }

    private(set) var state = State.joining
    let timeout: TimeAmount
    let gather: TimeAmount

    init(timeout: TimeAmount, gather: TimeAmount) {
        self.timeout = timeout
        self.gather = gather
    }

    /// The feed answered; `hasContent`: replayed events or an id-only start, sent at once.
    mutating func joined(hasContent: Bool) -> Action {
        guard case .joining = self.state else { preconditionFailure("invalid transition \(self.state) on joined") }
        if hasContent {
            self.state = .done
            return .answer
        }
        self.state = .waiting
        return .armTimeout(self.timeout)
    }

    /// The shard wrote a batch (or a gap notice) to this response.
    mutating func batchArrived() -> Action {
        switch self.state {
        case .waiting:
            self.state = .gathering
            return .armGather(self.gather)
        case .gathering:
            return .none
        case .joining, .done:
            // Before the join answered no shard has the client; after `answer` or `release` it left the shard.
            preconditionFailure("invalid transition \(self.state) on batchArrived")
        }
    }

    mutating func timeoutFired() -> Action {
        switch self.state {
        case .waiting:
            self.state = .done
            return .answer
        case .gathering, .done:
            // Gathering: the batch that arrived is sent when the gather timer fires. Done: a timer that
            // fired as it was cancelled.
            return .none
        case .joining:
            preconditionFailure("invalid transition \(self.state) on timeoutFired")
        }
    }

    mutating func gatherFired() -> Action {
        switch self.state {
        case .gathering:
            self.state = .done
            return .answer
        case .done:
            return .none
        case .joining, .waiting:
            preconditionFailure("invalid transition \(self.state) on gatherFired")
        }
    }

    /// The gateway or the feed is going away (drain, shutdown, feed removed, eviction): answer with what
    /// there is.
    mutating func ended() -> Action {
        switch self.state {
        case .waiting, .gathering:
            self.state = .done
            return .answer
        case .done:
            return .none
        case .joining:
            preconditionFailure("invalid transition \(self.state) on ended")
        }
    }

    /// The connection or stream is gone.
    mutating func clientLeft() -> Action {
        switch self.state {
        case .waiting, .gathering:
            self.state = .done
            return .release
        case .joining:
            self.state = .done
            return .none
        case .done:
            return .none
        }
    }
}
