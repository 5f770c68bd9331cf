import Logging
import NIOConcurrencyHelpers
import Synchronization

import class Foundation.Thread

/// The access log (`access_log:`): one JSON line per request, written by one thread of its own.
///
/// Off, it costs a request one relaxed atomic load (`isEnabled`), and the handlers then collect nothing.
/// On, a session hands its `AccessLogRecord` to `write` on its event loop, which encodes the line there
/// (`jsonLine`: string appends, no `JSONEncoder`) and queues it under a lock held for one append; the writer
/// thread takes everything queued at once and writes it with one blocking `write(2)`, so no event loop ever
/// waits for the disk. Over `capacity` waiting lines, a line is dropped and counted
/// (`ssegate_access_log_dropped_total`).
///
/// `apply` (start and every reload) switches to the configured destination; the same destination again is
/// reopened, so a SIGHUP after logrotate moved the file writes to a new one (no `copytruncate` needed).
///
/// `@unchecked Sendable`: `queue`, `change`, `destination`, `stopping`, `finished`, `whenFinished` and
/// `thread` are read and written only with `signal` locked; `file` only by the writer thread. `enabled` and
/// `dropped` are atomics.
final class AccessLog: @unchecked Sendable {
    /// What the writer thread does before it writes the next lines.
    private enum Change {
        /// Write to this destination from now on (opened by `apply`); the old one is closed.
        case use(AccessLogFile)
        /// Open the destination's path again (log rotation); the old descriptor is closed.
        case reopen
        /// The log was turned off: close the file.
        case close
    }

    private let enabled = Atomic<Bool>(false)
    private let dropped = Atomic<Int>(0)
    /// True when the writer thread has something to do.
    private let signal = ConditionLock<Bool>(value: false)
    private var queue: AccessLogQueue
    private var change: Change?
    private var destination: AccessLogDestination?
    private var stopping = false
    private var finished = false
    private var whenFinished: [@Sendable () -> Void] = []
    private var thread: Thread?
    private var file: AccessLogFile?
    private let logger: Logger

    /// `capacity`: how many lines may wait for the writer before lines are dropped.
    init(capacity: Int = 16_384, logger: Logger) {
        self.queue = AccessLogQueue(capacity: capacity)
        self.logger = logger
    }

    /// Whether requests should collect a record at all.
    var isEnabled: Bool { self.enabled.load(ordering: .relaxed) }

    /// Lines dropped because the writer had `capacity` lines waiting, or because a write failed.
    var droppedLines: Int { self.dropped.load(ordering: .relaxed) }

    /// Encodes `record` (on the caller's event loop) and queues the line for the writer.
    func write(_ record: AccessLogRecord) {
        guard self.isEnabled else { return }
        let line = record.jsonLine
        self.signal.lock()
        let taken = !self.stopping && self.queue.offer(line)
        self.signal.unlock(withValue: true)
        if !taken { self.dropped.add(1, ordering: .relaxed) }
    }

    /// Switches to `destination` (nil: off). A file is opened here, so that a path that cannot be opened
    /// fails the start or the reload (the log in force stays); the destination in force is reopened instead.
    /// Call off the event loops: opening a file may block.
    func apply(_ destination: AccessLogDestination?) throws(AccessLogFile.OpenError) {
        self.signal.lock()
        let current = self.destination
        self.signal.unlock()
        guard let destination else {
            self.enabled.store(false, ordering: .relaxed)
            if current != nil { self.request(.close, destination: nil) }
            return
        }
        if destination == current {
            self.request(.reopen, destination: destination)
        } else {
            self.request(.use(try AccessLogFile.open(destination)), destination: destination)
        }
        self.enabled.store(true, ordering: .relaxed)
    }

    /// Reopens the file in force (SIGHUP without a config file).
    func reopen() {
        self.signal.lock()
        let current = self.destination
        self.signal.unlock()
        guard let current else { return }
        self.request(.reopen, destination: current)
    }

    private func request(_ change: Change, destination: AccessLogDestination?) {
        self.signal.lock()
        if self.stopping {
            self.signal.unlock()
            if case .use(let file) = change { file.close() }
            return
        }
        switch (self.change, change) {
        case (.use(let pending), .use), (.use(let pending), .close):
            pending.close()
            self.change = change
        case (.use, .reopen):
            break  // the file about to be used is freshly opened
        default:
            self.change = change
        }
        self.destination = destination
        if self.thread == nil, destination != nil {
            let thread = Thread { [self] in self.run() }
            thread.name = "ssegate-access-log"
            self.thread = thread
            thread.start()
        }
        self.signal.unlock(withValue: true)
    }

    /// Writes what is queued, closes the file and ends the writer thread; lines written later are dropped.
    func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            self.signal.lock()
            guard self.thread != nil, !self.finished else {
                self.stopping = true
                self.signal.unlock()
                continuation.resume()
                return
            }
            self.stopping = true
            self.whenFinished.append { continuation.resume() }
            self.signal.unlock(withValue: true)
        }
        self.enabled.store(false, ordering: .relaxed)
    }

    // MARK: The writer thread

    private func run() {
        while true {
            self.signal.lock(whenValue: true)
            let lines = self.queue.takeAll()
            let change = self.change
            self.change = nil
            let stopping = self.stopping
            self.signal.unlock(withValue: false)

            if case .close = change {
                // Turned off: what was queued while it was on still goes to the file.
                self.writeLines(lines)
                self.apply(.close)
            } else {
                if let change { self.apply(change) }
                self.writeLines(lines)
            }
            if stopping {
                self.file?.close()
                self.file = nil
                self.signal.lock()
                self.finished = true
                let callbacks = self.whenFinished
                self.whenFinished = []
                self.signal.unlock()
                for callback in callbacks { callback() }
                return
            }
        }
    }

    private func apply(_ change: Change) {
        switch change {
        case .use(let new):
            self.file?.close()
            self.file = new
        case .reopen:
            guard let old = self.file else { return }
            do {
                let new = try AccessLogFile.open(old.destination)
                if case .file = old.destination { old.close() }
                self.file = new
            } catch {
                self.logger.error("access log: reopen failed, writing to the old file", metadata: ["error": "\(error)"])
            }
        case .close:
            self.file?.close()
            self.file = nil
        }
    }

    private func writeLines(_ lines: [String]) {
        guard !lines.isEmpty else { return }
        guard let file = self.file else {
            self.dropped.add(lines.count, ordering: .relaxed)
            return
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(lines.count * 320)
        for line in lines { bytes.append(contentsOf: line.utf8) }
        if !file.write(bytes) {
            self.dropped.add(lines.count, ordering: .relaxed)
        }
    }
}
