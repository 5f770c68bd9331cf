import NIOSSL

/// A feed's upstream TLS settings made into a context once per definition, or the reason they could not
/// be: the registry builds it, the feed hands it to its `UpstreamClient` without looking inside, so the
/// fan-out never names NIOSSL. A failure is kept (not thrown) so that the feed still runs and each
/// connect attempt reports it.
struct UpstreamTLSContext: Sendable {
    /// Why the context could not be made, as text (NIOSSL's errors are not all `Sendable`).
    struct Failure: Error, Sendable, CustomStringConvertible {
        var description: String
    }

    let context: Result<NIOSSLContext, Failure>

    init(_ config: UpstreamTLSConfig?) {
        do {
            self.context = .success(try UpstreamTLS.makeContext(config))
        } catch {
            self.context = .failure(Failure(description: "\(error)"))
        }
    }

    var failure: Failure? {
        if case .failure(let failure) = self.context { return failure }
        return nil
    }
}
