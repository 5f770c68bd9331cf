import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener: `/healthz`, `/readyz`, `/metrics` (Prometheus text), `/api/feeds` (JSON), and
/// for a person `/` (the status page) fed by `/api/status/stream` (SSE); `access` says who may read them.
enum AdminServer {
    static func bind(
        address: HostPort,
        group: EventLoopGroup,
        metrics: GatewayMetrics,
        access: AdminAccess,
        logger: Logger
    ) async throws -> Channel {
        let rates = AdminRates(metrics: metrics)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                do {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        AdminHandler(metrics: metrics, rates: rates, access: access)
                    )
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
        rates.start(on: channel.eventLoop)
        channel.closeFuture.whenComplete { _ in rates.stop() }
        return channel
    }
}
