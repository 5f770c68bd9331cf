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
            // The handshake and ALPN must finish within `tls_handshake_timeout`; the header timeout starts after it.
            let deadline = channel.eventLoop.scheduleTask(in: limits.tlsHandshakeTimeout ?? limits.headerTimeout) {
                context.countTLSHandshakeTimeout()
                channel.close(promise: nil)
            }
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
        // SwiftNIO's flood defences, written out (these are its 1.46 defaults) so that a change of default
        // cannot loosen them unseen; each trips GOAWAY and a close, counted by `HTTP2ConnectionGuard`.
        // PING, SETTINGS and PRIORITY floods: 200 per 30 s.
        connection.controlFrameRateLimit.maximumCount = 200
        connection.controlFrameRateLimit.windowLength = .seconds(30)
        // CONTINUATION floods (CVE-2024-27316 class): 5 in a row; the block is also capped at
        // SETTINGS_MAX_HEADER_LIST_SIZE (max_header_bytes) as it accumulates.
        connection.maximumSequentialContinuationFrames = 5
        // PING/SETTINGS ACKs queued for a peer that does not read them.
        connection.maximumBufferedControlFrames = 10_000
        connection.maximumSequentialEmptyDataFrames = 1
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.outboundBufferSizeHighWatermark = 64 * 1024
        stream.outboundBufferSizeLowWatermark = 16 * 1024
        // RST_STREAM floods on one connection: 200 per 30 s (`premature_resets_per_second` covers many).
        stream.streamResetFrameRateLimit.maximumCount = 200
        stream.streamResetFrameRateLimit.windowLength = .seconds(30)
        // Closes a connection without a stream (none yet, or none left) after the header timeout, and a
        // connection on which the HTTP/2 handler hit a connection error (it sent GOAWAY).
        let guardHandler = HTTP2ConnectionGuard(
            timeout: limits.headerTimeout,
            idleTimeout: limits.idleConnectionTimeout,
            onIdleClose: { context.countIdleConnectionClose() },
            onConnectionError: { context.countHTTP2ConnectionError($0) }
        )
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(
            HTTP2FloodGuard(listener: resets, prematureResetsPerSecond: limits.prematureResetsPerSecond) { reason in
                context.countFloodClose(reason)
            }
        )
        // Below the HTTP/2 handler: one write per connection per batch, not one per stream.
        let deferred = context.hub(for: channel.eventLoop).deferredFlushes
        try sync.addHandler(HTTP2FlushCoalescer(deferred: deferred))
        // Above the HTTP/2 handler: the streams' frames go straight to it (`HTTP2DataWriter`).
        let dataWriter = HTTP2DataWriter(deferred: deferred)
        let writer = NIOLoopBound(dataWriter, eventLoop: channel.eventLoop)
        _ = try sync.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: connection,
            streamConfiguration: stream,
            streamDelegate: guardHandler.streamDelegate(on: channel.eventLoop)
        ) { streamChannel in
            streamChannel.eventLoop.makeCompletedFuture {
                try streamChannel.pipeline.syncOperations.addHandler(
                    HTTP2StreamHandler(
                        gateway: context,
                        delivery: delivery,
                        peer: peer,
                        tls: tls,
                        dataWriter: writer.value
                    )
                )
            }
        }
        try sync.addHandler(dataWriter)
        try sync.addHandler(guardHandler)
    }
}
