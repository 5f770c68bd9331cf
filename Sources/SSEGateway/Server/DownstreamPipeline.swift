import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL

/// Builds the per-connection pipelines of a downstream listener: TLS with ALPN (h2, http/1.1) when the
/// listener has `tls`, else HTTP/1.1 and h2c by prior knowledge on the same port; on a `proxy_protocol`
/// listener, the PROXY header is read before either.
enum DownstreamPipeline {
    /// `resets`: the listener's budget of premature HTTP/2 stream resets, shared by its connections.
    /// `proxyProtocol`: every connection starts with a PROXY protocol header (v1 or v2), whose source
    /// becomes the connection's address.
    static func configure(
        channel: Channel,
        tls: ListenerTLS?,
        resets: ListenerResetBudget,
        context: GatewayContext,
        limits: LimitsConfig,
        delivery: DeliveryMode? = nil,
        proxyProtocol: Bool = false
    ) throws {
        let sync = channel.pipeline.syncOperations
        // Only a PROXY header can change a connection's address; elsewhere the handlers ask the channel.
        let peer = proxyProtocol ? ConnectionPeer(channel: channel) : nil
        if let proxyPeer = peer {
            try sync.addHandler(
                ProxyProtocolHandler(timeout: limits.headerTimeout, maxLength: limits.maxHeaderBytes, peer: proxyPeer) {
                    reason,
                    detail in
                    context.proxyRejections.record(
                        reason,
                        detail: detail,
                        peer: channel.remoteAddress?.ipAddress,
                        logger: context.logger
                    )
                }
            )
        }
        if let tls {
            try sync.addHandler(NIOSSLServerHandler(context: tls.context))
            // The handshake and ALPN must finish within the header timeout too.
            let deadline = channel.eventLoop.scheduleTask(in: limits.headerTimeout) { channel.close(promise: nil) }
            channel.closeFuture.whenComplete { _ in deadline.cancel() }
            _ = channel.configureHTTP2SecureUpgrade(
                h2ChannelConfigurator: { channel in
                    deadline.cancel()
                    return channel.eventLoop.makeCompletedFuture {
                        try Self.configureHTTP2(
                            channel: channel,
                            resets: resets,
                            context: context,
                            limits: limits,
                            delivery: delivery,
                            peer: peer,
                            tls: true
                        )
                    }
                },
                http1ChannelConfigurator: { channel in
                    deadline.cancel()
                    return channel.eventLoop.makeCompletedFuture {
                        try Self.configureHTTP1(
                            channel: channel,
                            context: context,
                            limits: limits,
                            delivery: delivery,
                            peer: peer,
                            tls: true
                        )
                    }
                }
            )
        } else {
            try sync.addHandler(
                ProtocolDetector(
                    timeout: limits.headerTimeout,
                    http1: {
                        try Self.configureHTTP1(
                            channel: $0,
                            context: context,
                            limits: limits,
                            delivery: delivery,
                            peer: peer
                        )
                    },
                    http2: {
                        try Self.configureHTTP2(
                            channel: $0,
                            resets: resets,
                            context: context,
                            limits: limits,
                            delivery: delivery,
                            peer: peer
                        )
                    }
                )
            )
        }
    }

    static func configureHTTP1(
        channel: Channel,
        context: GatewayContext,
        limits: LimitsConfig,
        delivery: DeliveryMode? = nil,
        peer: ConnectionPeer? = nil,
        tls: Bool = false
    ) throws {
        let limiter = HeadSizeLimiter(limit: limits.maxHeaderBytes, accessLog: context.accessLog, tls: tls)
        let sync = channel.pipeline.syncOperations
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes))
        try sync.addHandler(limiter)
        try sync.addHandler(decoder)
        try sync.addHandler(
            HTTP1StreamHandler(
                gateway: context,
                limiter: limiter,
                requestHandlers: [limiter, decoder],
                delivery: delivery,
                peer: peer,
                tls: tls
            )
        )
    }

    /// HTTP/2 with SwiftNIO's server defences on (reset-flood, glitch and control-frame limits, header
    /// validation), a bounded number of concurrent streams per connection, and `HTTP2FloodGuard` for
    /// what SwiftNIO does not count (WINDOW_UPDATE floods, resets spread over many connections).
    static func configureHTTP2(
        channel: Channel,
        resets: ListenerResetBudget,
        context: GatewayContext,
        limits: LimitsConfig,
        delivery: DeliveryMode? = nil,
        peer: ConnectionPeer? = nil,
        tls: Bool = false
    ) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: limits.maxStreamsPerConnection),
            HTTP2Setting(parameter: .maxHeaderListSize, value: limits.maxHeaderBytes),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ]
        connection.headerBlockValidation = .enabled
        connection.contentLengthValidation = .enabled
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.outboundBufferSizeHighWatermark = 64 * 1024
        stream.outboundBufferSizeLowWatermark = 16 * 1024
        // Closes a connection without a stream (none yet, or none left) after the header timeout, and a
        // connection on which the HTTP/2 handler hit a connection error (it sent GOAWAY).
        let guardHandler = HTTP2ConnectionGuard(timeout: limits.headerTimeout)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(
            HTTP2FloodGuard(listener: resets, prematureResetsPerSecond: limits.prematureResetsPerSecond) { reason in
                context.countFloodClose(reason)
            }
        )
        // Below the HTTP/2 handler: one write per connection per batch, not one per stream.
        try sync.addHandler(HTTP2FlushCoalescer(deferred: context.hub(for: channel.eventLoop).deferredFlushes))
        _ = try sync.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: connection,
            streamConfiguration: stream,
            streamDelegate: guardHandler.streamDelegate(on: channel.eventLoop)
        ) { streamChannel in
            streamChannel.eventLoop.makeCompletedFuture {
                try streamChannel.pipeline.syncOperations.addHandler(
                    HTTP2StreamHandler(gateway: context, delivery: delivery, peer: peer, tls: tls)
                )
            }
        }
        try sync.addHandler(guardHandler)
    }
}
