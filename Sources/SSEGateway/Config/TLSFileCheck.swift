/// Checks, at load time, that the TLS files a config names can be used: a certificate or key that does not
/// parse, a key that does not belong to its certificate, a CA bundle that is not PEM.
///
/// The config layer knows only paths and settings; building a TLS context is the job of the layers that use
/// one (the listeners and the upstream client). So `ConfigLoader` takes the check from its caller and reports
/// what it throws at the key's position, as `FILE:LINE:COLUMN`. The gateway's check, which builds the
/// contexts exactly as the listener and the upstream client will, is `TLSFileCheck.contexts` (in Server/).
public struct TLSFileCheck: Sendable {
    /// Throws when a listener's certificate and key cannot serve TLS.
    public var listener: @Sendable (ServerTLSConfig) throws -> Void
    /// Throws when an https upstream's settings (nil: system trust store) cannot make a client context.
    public var upstream: @Sendable (UpstreamTLSConfig?) throws -> Void

    public init(
        listener: @escaping @Sendable (ServerTLSConfig) throws -> Void,
        upstream: @escaping @Sendable (UpstreamTLSConfig?) throws -> Void
    ) {
        self.listener = listener
        self.upstream = upstream
    }
}
