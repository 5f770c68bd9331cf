import Logging
import NIOCore
import Synchronization

/// Connections a `proxy_protocol` listener closed before their first request, by reason, for `/metrics`
/// (`ssegate_proxy_protocol_rejected_total{reason}`), and the log line about them: at most one per
/// `logInterval`, with the count since the last one, so that a scan of the port cannot flood the log.
final class ProxyProtocolRejections: Sendable {
    enum Reason: String, CaseIterable, Sendable {
        /// The first bytes were not a PROXY header, or a malformed one (e.g. a client that bypassed the balancer).
        case invalid
        /// No whole header within `limits.header_timeout`.
        case timeout
    }

    static let logInterval: TimeAmount = .seconds(10)

    private let invalid = Atomic<Int>(0)
    private let timeout = Atomic<Int>(0)
    /// Rejections not yet in a log line.
    private let unlogged = Atomic<Int>(0)
    /// When the last line was logged (`NIODeadline.uptimeNanoseconds`); 0: never.
    private let lastLogged = Atomic<UInt64>(0)

    func count(_ reason: Reason) -> Int {
        switch reason {
        case .invalid: return self.invalid.load(ordering: .relaxed)
        case .timeout: return self.timeout.load(ordering: .relaxed)
        }
    }

    /// Counts one rejection and logs it unless a line was logged within `logInterval`.
    func record(_ reason: Reason, detail: String, peer: String?, logger: Logger, now: NIODeadline = .now()) {
        switch reason {
        case .invalid: self.invalid.add(1, ordering: .relaxed)
        case .timeout: self.timeout.add(1, ordering: .relaxed)
        }
        self.unlogged.add(1, ordering: .relaxed)
        let last = self.lastLogged.load(ordering: .relaxed)
        let nowNanos = now.uptimeNanoseconds
        guard last == 0 || nowNanos &- last >= UInt64(Self.logInterval.nanoseconds),
            self.lastLogged.compareExchange(expected: last, desired: max(1, nowNanos), ordering: .relaxed).exchanged
        else { return }
        let since = self.unlogged.exchange(0, ordering: .relaxed)
        logger.warning(
            "connection without a valid PROXY protocol header closed",
            metadata: [
                "reason": "\(reason.rawValue)", "detail": "\(detail)", "peer": "\(peer ?? "-")",
                "closed_since_last_line": "\(since)",
            ]
        )
    }
}
