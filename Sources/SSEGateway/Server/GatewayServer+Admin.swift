import Logging

extension AdminService {
    /// The admin endpoint of `server`, at `config`'s address, serving its read-model.
    public init(config: AdminConfig?, server: GatewayServer, logger: Logger) {
        self.init(config: config, metrics: server.metrics, group: server.group, logger: logger)
    }
}
