import Foundation

extension TLSFileCheck {
    /// The gateway's check: builds the listener's and the upstream client's TLS contexts exactly as they
    /// will at bind and at connect, so a file that would fail there is a config error at load instead.
    public static let contexts = TLSFileCheck(
        listener: { _ = try ListenerTLS.makeContext($0) },
        upstream: { _ = try UpstreamTLS.makeContext($0) }
    )
}

extension ConfigLoader {
    /// Reads and validates a file, TLS files included (`TLSFileCheck.contexts`). `file` is printed as given
    /// in errors. Relative paths inside (TLS files) resolve against the file's folder.
    public static func load(
        file: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigLoadError) -> GatewayConfig {
        try self.load(file: file, environment: environment, tlsCheck: .contexts)
    }

    /// Parses and validates config text, TLS files included (`TLSFileCheck.contexts`). `file` is only used
    /// in error messages; `baseDirectory` is where relative TLS paths resolve.
    public static func parse(
        yaml: String,
        file: String,
        baseDirectory: String,
        environment: [String: String]
    ) throws(ConfigLoadError) -> GatewayConfig {
        try self.parse(
            yaml: yaml,
            file: file,
            baseDirectory: baseDirectory,
            environment: environment,
            tlsCheck: .contexts
        )
    }
}
