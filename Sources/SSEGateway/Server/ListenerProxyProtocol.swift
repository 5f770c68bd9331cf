import Synchronization

/// A bound listener's `proxy_protocol:`, read once per new connection; a reload changes it in place (the
/// listener keeps its socket, as for `delivery:`), so connections accepted after the reload follow it.
final class ListenerProxyProtocol: Sendable {
    private let flag: Atomic<Bool>

    init(_ enabled: Bool) {
        self.flag = Atomic(enabled)
    }

    var enabled: Bool {
        get { self.flag.load(ordering: .relaxed) }
        set { self.flag.store(newValue, ordering: .relaxed) }
    }
}
