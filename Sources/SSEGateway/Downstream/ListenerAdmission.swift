import NIOCore
import Synchronization

/// What one listener admits per second, shared by its connections on every event loop: new connections
/// (`limits.new_connections_per_second`) and, on a TLS listener, handshakes
/// (`limits.tls_handshakes_per_second`). Taken once per accepted connection, never per request or event.
final class ListenerAdmission: Sendable {
    /// Why a new connection was turned away (the label of `ssegate_connections_refused_total`).
    enum Refusal: String, CaseIterable, Sendable {
        case connectionRate = "connection_rate"
        case tlsHandshakeRate = "tls_handshake_rate"
    }

    private let connections = Mutex(TokenBucket())
    private let handshakes = Mutex(TokenBucket())

    /// Admits one new connection, or says which limit refused it. A TLS connection takes a handshake too;
    /// a connection refused for its rate takes no handshake token.
    func admit(tls: Bool, limits: LimitsConfig, now: NIODeadline = .now()) -> Refusal? {
        guard self.connections.withLock({ $0.take(rate: limits.newConnectionsPerSecond, now: now) }) else {
            return .connectionRate
        }
        if tls, !self.handshakes.withLock({ $0.take(rate: limits.tlsHandshakesPerSecond, now: now) }) {
            return .tlsHandshakeRate
        }
        return nil
    }
}
