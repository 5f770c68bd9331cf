import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Ends the process when `shutdown_timeout` has passed since the stop signal.
///
/// The drain spreads the clients' closes over 80% of `shutdown_timeout` and ends its wait at the timeout,
/// but what comes after (closing thousands of channels, a TLS peer that never answers `close_notify`,
/// freeing a large heap) is not bounded by it. `GatewayProcess` arms it the moment the first SIGTERM or
/// SIGINT arrives, before it asks the service group to shut down: a Dispatch timer, not an event-loop
/// task, since the loops are what may be too busy to run it. Only `ssegate serve` uses it: it calls
/// `_exit`.
///
/// `@unchecked Sendable`: `timeout` and `logger` are immutable and Sendable; `timer` (a Dispatch source,
/// which is not marked Sendable) is only read and written under `lock`.
public final class ProcessExitDeadline: @unchecked Sendable {
    private let timeout: @Sendable () -> TimeAmount
    private let logger: Logger
    private let lock = NIOLock()
    /// Set by `arm` on the signal watcher's task, cancelled by `disarm` after the group ended; guarded by `lock`.
    private var timer: DispatchSourceTimer?

    /// `timeout` is read when the shutdown begins: a reload may have changed it since start-up.
    public init(timeout: @escaping @Sendable () -> TimeAmount, logger: Logger) {
        self.timeout = timeout
        self.logger = logger
    }

    /// Starts the countdown (once; a second call does nothing).
    public func arm() {
        let logger = self.logger
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "ssegate.shutdown-deadline"))
        timer.schedule(deadline: .now() + .nanoseconds(Int(self.timeout().nanoseconds)))
        timer.setEventHandler {
            logger.warning("shutdown_timeout passed: exiting with connections still closing")
            // `_exit`, not `exit`: the main thread may be exiting at this moment too, and running the
            // atexit handlers twice at once is undefined.
            fflush(nil)  // every output stream
            _exit(0)
        }
        timer.resume()
        // Kept until `disarm`: a released source is cancelled.
        let armed = self.lock.withLock { () -> Bool in
            guard self.timer == nil else { return false }
            self.timer = timer
            return true
        }
        if !armed { timer.cancel() }
    }

    /// The drain ended in time: the normal exit follows.
    public func disarm() {
        self.lock.withLock {
            self.timer?.cancel()
            self.timer = nil
        }
    }
}
