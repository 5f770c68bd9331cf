import NIOCore

/// The whole gateway configuration, as read from the YAML file (SPEC §2).
///
/// Plain values with the documented defaults; `ConfigLoader` builds it and validates it once,
/// so the rest of the gateway never sees an invalid value.
public struct GatewayConfig: Sendable, Equatable {
    public var listen: [ListenerConfig] = [ListenerConfig(address: HostPort(host: "0.0.0.0", port: 8080))]
    public var admin: AdminConfig? = AdminConfig(address: HostPort(host: "127.0.0.1", port: 9090))
    public var shutdownTimeout: TimeAmount = .seconds(10)
    public var limits = LimitsConfig()
    public var logLevel: String = "info"
    /// `reload_on_change`: poll the config file and reload when its content changes, as a SIGHUP does
    /// (a ConfigMap mounted as a volume changes under a running pod without any signal).
    public var reloadOnChange = false
    /// `reload_check_interval`: how often `reload_on_change` reads the file.
    public var reloadCheckInterval: TimeAmount = .seconds(5)
    /// `access_log:`; nil: off.
    public var accessLog: AccessLogDestination? = nil
    public var feeds: [FeedConfig] = []

    public init() {}
}
