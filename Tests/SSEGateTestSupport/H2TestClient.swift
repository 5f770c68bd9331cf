import CompressNIO
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS
import SSE
import XCTest

/// A real HTTP/2 client for tests: one connection (h2c with prior knowledge, or TLS with ALPN `h2`)
/// built with SwiftNIO's HTTP/2 pipeline in client mode; each request is its own stream channel,
/// recorded by an `H2TestStream`. Records the server's first SETTINGS, GOAWAY, the negotiated ALPN
/// protocol and the connection's close.
final class H2TestClient: @unchecked Sendable {
    struct ConnectionState {
        var remoteSettings: [HTTP2Setting]?
        var goAway: HTTP2ErrorCode?
        var negotiatedALPN: String?
        var handshakeCompleted = false
        var closed = false
    }

    private let state = NIOLockedValueBox(ConnectionState())
    private(set) var channel: Channel!
    private var multiplexer: NIOHTTP2Handler.StreamMultiplexer!

    /// `tls`: a client TLS configuration (its `applicationProtocols` default to `["h2"]` when empty).
    /// `streamWindow`/`connectionWindow`: the receive windows. Browsers use several MiB (Chrome: 6 MiB per
    /// stream, 15 MiB for the connection); HTTP/2's default is 64 KiB for both, which lets a server send
    /// only 64 KiB per round trip over the whole connection.
    static func connect(
        port: Int,
        group: EventLoopGroup,
        tls: TLSConfiguration? = nil,
        serverHostname: String = "localhost",
        streamWindow: Int = 1 << 20,
        connectionWindow: Int = 16 << 20
    ) async throws -> H2TestClient {
        let client = H2TestClient()
        let sslContext = try tls.map { tls in
            var tls = tls
            if tls.applicationProtocols.isEmpty { tls.applicationProtocols = ["h2"] }
            return try NIOSSLContext(configuration: tls)
        }
        let multiplexerPromise = group.next().makePromise(of: NIOHTTP2Handler.StreamMultiplexer.self)
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname))
                    }
                    try sync.addHandler(ConnectionRecorder(client: client))
                    var connection = NIOHTTP2Handler.ConnectionConfiguration()
                    connection.initialSettings = [
                        HTTP2Setting(parameter: .maxConcurrentStreams, value: 100),
                        HTTP2Setting(parameter: .maxHeaderListSize, value: 64 * 1024),
                        HTTP2Setting(parameter: .enablePush, value: 0),
                        HTTP2Setting(parameter: .initialWindowSize, value: streamWindow),
                    ]
                    // WINDOW_UPDATEs for the connection follow what arrives, those of a stream follow what its
                    // channel reads (so a stream that never reads runs out of its window, and only it).
                    connection.targetWindowSize = connectionWindow
                    var stream = NIOHTTP2Handler.StreamConfiguration()
                    stream.targetWindowSize = streamWindow
                    let multiplexer = try sync.configureHTTP2Pipeline(
                        mode: .client,
                        connectionConfiguration: connection,
                        streamConfiguration: stream
                    ) { channel in
                        // Server push is off; nothing is expected here.
                        channel.close()
                    }
                    // Root-stream frames (SETTINGS, GOAWAY, PING) come out of the HTTP/2 handler.
                    try sync.addHandler(RootFrameRecorder(client: client))
                    multiplexerPromise.succeed(multiplexer)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        client.channel = channel
        client.multiplexer = try await multiplexerPromise.futureResult.get()
        return client
    }

    var snapshot: ConnectionState { self.state.withLockedValue { $0 } }
    var isClosed: Bool { self.snapshot.closed }

    /// The value of one setting from the server's first SETTINGS frame (waits for it).
    func remoteSetting(
        _ parameter: HTTP2SettingsParameter,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> Int? {
        try await eventually("the server's SETTINGS", file: file, line: line) { self.snapshot.remoteSettings != nil }
        return self.snapshot.remoteSettings?.last { $0.parameter == parameter }?.value
    }

    /// Opens a stream and sends a request HEADERS frame (END_STREAM set). `reading: false` gives a stream
    /// channel that never reads: its frames stay buffered, so no WINDOW_UPDATE is sent for it and the
    /// server's send window for the stream runs out.
    /// `recordBody: false` keeps the events but not the body text (for high volumes). `gunzip: true` inflates
    /// each DATA frame as it arrives (ask for it with an `Accept-Encoding: gzip` header).
    func request(
        _ path: String,
        method: String = "GET",
        headers: [(String, String)] = [],
        reading: Bool = true,
        scheme: String = "http",
        authority: String = "127.0.0.1",
        waitUntilSent: Bool = true,
        recordBody: Bool = true,
        gunzip: Bool = false
    ) async throws -> H2TestStream {
        let stream = H2TestStream()
        stream.recordBody = recordBody
        if gunzip { stream.inflater = try ZlibDecompressor(algorithm: .gzip) }
        let multiplexer = self.multiplexer!
        let streamChannel = try await self.channel.eventLoop.flatSubmit {
            multiplexer.createStreamChannel { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(H2TestStream.Recorder(stream: stream))
                }.flatMap {
                    channel.setOption(.autoRead, value: reading)
                }
            }
        }.get()
        stream.channel = streamChannel
        var request = HPACKHeaders([
            (":method", method), (":scheme", scheme), (":path", path), (":authority", authority),
        ])
        for (name, value) in headers { request.add(name: name.lowercased(), value: value) }
        let frame = HTTP2Frame.FramePayload.headers(.init(headers: request, endStream: true))
        // The HTTP/2 handler holds a stream back while the server's SETTINGS_MAX_CONCURRENT_STREAMS are
        // open; `waitUntilSent: false` returns at once in that case.
        let sent: EventLoopFuture<Void> = streamChannel.writeAndFlush(frame)
        if waitUntilSent { try await sent.get() }
        return stream
    }

    func close() async {
        try? await self.channel.close()
    }

    private final class ConnectionRecorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let client: H2TestClient
        init(client: H2TestClient) { self.client = client }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.fireChannelRead(data)
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .handshakeCompleted(let negotiated) = event as? TLSUserEvent {
                self.client.state.withLockedValue {
                    $0.handshakeCompleted = true
                    $0.negotiatedALPN = negotiated
                }
            }
            context.fireUserInboundEventTriggered(event)
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.client.state.withLockedValue { $0.closed = true }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.fireErrorCaught(error)
        }
    }

    private final class RootFrameRecorder: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame
        let client: H2TestClient
        init(client: H2TestClient) { self.client = client }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = self.unwrapInboundIn(data)
            switch frame.payload {
            case .settings(.settings(let settings)):
                self.client.state.withLockedValue { state in
                    if state.remoteSettings == nil { state.remoteSettings = settings }
                }
            case .goAway(_, let errorCode, _):
                self.client.state.withLockedValue { $0.goAway = errorCode }
            default:
                break
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            // Connection errors close the connection; stream errors reach the stream channels.
            context.close(promise: nil)
        }
    }
}

/// One HTTP/2 request stream: the response headers, DATA parsed with the project's SSE parser, the raw
/// body, END_STREAM, RST_STREAM (its error code) and the stream channel's close.
final class H2TestStream: PolledState, @unchecked Sendable {
    struct Snapshot {
        var headers: HPACKHeaders?
        var events: [ServerSentEvent] = []
        var body = ""
        var bodyBytes = 0
        /// The first bytes of the body as sent (the text above is decoded as UTF-8).
        var rawPrefix: [UInt8] = []
        var dataFrames = 0
        var endStream = false
        var reset: HTTP2ErrorCode?
        var closed = false

        var status: Int? { self.headers?.first(name: ":status").flatMap { Int($0) } }
        func header(_ name: String) -> [String] { self.headers?[name.lowercased()] ?? [] }
    }

    private let state = NIOLockedValueBox(Snapshot())
    fileprivate(set) var channel: Channel!
    fileprivate var recordBody = true
    /// Set for a stream that asked for gzip: DATA is inflated as it arrives, so the events are exactly what
    /// a browser could decode at that moment (`bodyBytes` and `rawPrefix` stay the compressed bytes).
    fileprivate var inflater: ZlibDecompressor?

    var snapshot: Snapshot { self.state.withLockedValue { $0 } }
    var events: [ServerSentEvent] { self.snapshot.events }

    func describe(_ snapshot: Snapshot) -> String {
        "status \(snapshot.status.map(String.init) ?? "none"), \(snapshot.events.count) events, "
            + "end: \(snapshot.endStream), reset: \(String(describing: snapshot.reset)), closed: \(snapshot.closed), "
            + "body prefix: \(snapshot.body.prefix(200))"
    }

    func waitForHeaders(file: StaticString = #filePath, line: UInt = #line) async throws -> Snapshot {
        try await self.wait("response headers", file: file, line: line) { $0.headers != nil }
    }

    func waitForEvents(
        _ count: Int,
        timeout: TimeAmount = .seconds(10),
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> [ServerSentEvent] {
        try await self.wait("\(count) events", timeout: timeout, file: file, line: line) { $0.events.count >= count }
            .events
    }

    /// Waits for the response to end (END_STREAM) or the stream to close.
    func waitForEnd(
        timeout: TimeAmount = .seconds(10),
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> Snapshot {
        try await self.wait("end of stream", timeout: timeout, file: file, line: line) { $0.endStream || $0.closed }
    }

    /// Resets the stream from the client side (closing an open stream channel sends RST_STREAM CANCEL).
    func cancel() async {
        try? await self.channel.close()
    }

    final class Recorder: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        let stream: H2TestStream
        var reader = SSEBodyReader()

        init(stream: H2TestStream) { self.stream = stream }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .headers(let headers):
                self.stream.state.withLockedValue { state in
                    if state.headers == nil || state.status.map({ $0 < 200 }) == true {
                        state.headers = headers.headers
                    }
                    if headers.endStream { state.endStream = true }
                }
            case .data(let payload):
                guard case .byteBuffer(let buffer) = payload.data else { return }
                let count = buffer.readableBytes
                let head = buffer.getBytes(at: buffer.readerIndex, length: min(count, 16)) ?? []
                let text: String
                let parsed: [ServerSentEvent]
                switch self.reader.read(buffer, inflater: self.stream.inflater, recordBody: self.stream.recordBody) {
                case .inflateFailed(let message):
                    self.stream.state.withLockedValue { $0.body += message }
                    return
                case .read(let read, let events):
                    (text, parsed) = (read, events)
                }
                self.stream.state.withLockedValue {
                    $0.body += text
                    if $0.rawPrefix.count < 16 { $0.rawPrefix += head.prefix(16 - $0.rawPrefix.count) }
                    $0.bodyBytes += count
                    $0.dataFrames += 1
                    $0.events += parsed
                    if payload.endStream { $0.endStream = true }
                }
            case .rstStream(let code):
                self.stream.state.withLockedValue { $0.reset = code }
            default:
                break
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            if let closed = error as? NIOHTTP2Errors.StreamClosed {
                self.stream.state.withLockedValue { $0.reset = $0.reset ?? closed.errorCode }
            }
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.stream.state.withLockedValue { $0.closed = true }
            context.fireChannelInactive()
        }
    }
}
