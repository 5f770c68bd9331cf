import NIOHTTP2

extension HTTP2ConnectionGuard {
    /// The open streams of one HTTP/2 connection and its idle timer, as a value type without I/O:
    /// `HTTP2ConnectionGuard` feeds it the channel's and the stream delegate's events and carries out the
    /// actions.
    ///
    /// The streams are counted exactly: every close pairs with a create (the HTTP/2 handler reports both
    /// for each stream it made a channel for), so a close with no stream open is a bug and stops the
    /// process instead of being clamped to zero.
    struct StateMachine {
        enum State: Equatable {
            /// Added to a channel that is not active yet.
            case waitingForActive
            /// Active with no open stream: the idle timer runs.
            case idle
            /// Active with `openStreams` (at least one) open: no timer.
            case busy(openStreams: Int)
            /// Inactive (or the handler removed, or GOAWAY sent for idleness): no timer; the HTTP/2 handler
            /// still closes the streams that were open.
            case closed(openStreams: Int)
        }

        enum Action: Equatable {
            case none
            /// (Re)arm the idle timer.
            case armTimer
            case cancelTimer
            /// The connection stayed idle for the timeout: GOAWAY (NO_ERROR) naming the last stream seen,
            /// then close.
            case sendGoAwayAndClose(lastStreamID: HTTP2StreamID)
        }

        private(set) var state = State.waitingForActive
        /// The highest stream id the client opened.
        private(set) var lastStreamID = HTTP2StreamID.rootStream

        /// The handler was added (once the protocol is known: after ALPN or the h2c preface).
        mutating func handlerAdded(channelActive: Bool) -> Action {
            guard case .waitingForActive = self.state else {
                preconditionFailure("invalid transition \(self.state) on handlerAdded")
            }
            guard channelActive else { return .none }
            self.state = .idle
            return .armTimer
        }

        mutating func channelActive() -> Action {
            switch self.state {
            case .waitingForActive, .idle:
                self.state = .idle
                return .armTimer
            case .busy, .closed:
                preconditionFailure("invalid transition \(self.state) on channelActive")
            }
        }

        mutating func streamCreated(_ id: HTTP2StreamID) -> Action {
            if id > self.lastStreamID { self.lastStreamID = id }
            switch self.state {
            case .idle:
                self.state = .busy(openStreams: 1)
                return .cancelTimer
            case .busy(let open):
                self.state = .busy(openStreams: open + 1)
                return .none
            case .closed(let open):
                // A stream the client opened while the GOAWAY or the close was on its way.
                self.state = .closed(openStreams: open + 1)
                return .none
            case .waitingForActive:
                preconditionFailure("invalid transition \(self.state) on streamCreated(\(id))")
            }
        }

        mutating func streamClosed(_ id: HTTP2StreamID) -> Action {
            switch self.state {
            case .busy(let open) where open == 1:
                self.state = .idle
                return .armTimer
            case .busy(let open):
                self.state = .busy(openStreams: open - 1)
                return .none
            case .closed(let open) where open > 0:
                self.state = .closed(openStreams: open - 1)
                return .none
            case .waitingForActive, .idle, .closed:
                preconditionFailure("invalid transition \(self.state) on streamClosed(\(id))")
            }
        }

        /// The channel went inactive or the handler was removed (both may come, in either order).
        mutating func stopped() -> Action {
            switch self.state {
            case .waitingForActive, .idle:
                self.state = .closed(openStreams: 0)
            case .busy(let open), .closed(let open):
                self.state = .closed(openStreams: open)
            }
            return .cancelTimer
        }

        mutating func timerFired() -> Action {
            switch self.state {
            case .idle:
                self.state = .closed(openStreams: 0)
                return .sendGoAwayAndClose(lastStreamID: self.lastStreamID)
            case .busy, .closed:
                // A stream or the close cancelled the timer, but it was already due in this loop tick.
                return .none
            case .waitingForActive:
                preconditionFailure("invalid transition \(self.state) on timerFired")
            }
        }
    }
}
