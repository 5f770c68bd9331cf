import CompressNIO
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import SSE
import XCTest

/// A real SSE client for tests: a TCP connection on 127.0.0.1 with NIO's HTTP/1 response decoder and
/// the project's SSE parser, over TLS when given a `tls` configuration. Records the response head, every
/// event, the raw body text, the close, and the ALPN protocol a TLS handshake negotiated.
/// `reading: false` never reads the socket (a stalled consumer); `receiveBuffer` shrinks SO_RCVBUF.
final class TestSSEClient: PolledState, @unchecked Sendable {
    struct Snapshot {
        var negotiatedALPN: String?
        var head: HTTPResponseHead?
        var events: [ServerSentEvent] = []
        var body = ""
        var closed = false
        var ended = false
    }

    private let state = NIOLockedValueBox(Snapshot())
    private var channel: Channel!
    /// Off for load tests: keeping every byte as text costs more than the gateway's work.
    private var recordBody = true
    /// Set for a client that asked for gzip: every body part is inflated as it arrives, so a test sees
    /// exactly what a browser could decode at that moment.
    private var inflater: ZlibDecompressor?
    /// Compressed body bytes received, for ratio checks.
    private(set) var compressedBytes = 0

    static func connect(
        port: Int,
        path: String,
        headers: [(String, String)] = [],
        method: HTTPMethod = .GET,
        group: EventLoopGroup,
        receiveBuffer: Int? = nil,
        reading: Bool = true,
        host: String = "127.0.0.1",
        recordBody: Bool = true,
        gunzip: Bool = false,
        tls: TLSConfiguration? = nil,
        serverHostname: String = "localhost"
    ) async throws -> TestSSEClient {
        let client = TestSSEClient()
        let tlsContext = try tls.map { try NIOSSLContext(configuration: $0) }
        client.recordBody = recordBody
        if gunzip { client.inflater = try ZlibDecompressor(algorithm: .gzip) }
        var bootstrap = ClientBootstrap(group: group)
            .channelOption(.autoRead, value: reading)
            .connectTimeout(.seconds(5))
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
        }
        client.channel = try await bootstrap.channelInitializer { channel in
            do {
                if let tlsContext {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLClientHandler(context: tlsContext, serverHostname: serverHostname)
                    )
                }
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                try channel.pipeline.syncOperations.addHandler(Recorder(client: client))
                return channel.eventLoop.makeSucceededVoidFuture()
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }
        .connect(host: host, port: port).get()
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: "\(tls == nil ? "127.0.0.1" : serverHostname):\(port)")
        head.headers.add(name: "Accept", value: "text/event-stream")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        client.channel.write(HTTPClientRequestPart.head(head), promise: nil)
        try await client.channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        return client
    }

    var snapshot: Snapshot { self.state.withLockedValue { $0 } }
    var events: [ServerSentEvent] { self.snapshot.events }
    var body: String { self.snapshot.body }
    var isClosed: Bool { self.snapshot.closed }

    /// Polls until `condition` holds or `timeout` passes; fails the test with `message` on timeout.
    func describe(_ snapshot: Snapshot) -> String {
        "have \(snapshot.events.count) events, closed: \(snapshot.closed), body prefix: \(snapshot.body.prefix(300))"
    }

    func waitForHead(file: StaticString = #filePath, line: UInt = #line) async throws -> HTTPResponseHead {
        try await self.wait("response head", file: file, line: line) { $0.head != nil }.head!
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

    func peerCertificateDER() async throws -> [UInt8]? {
        try await self.channel.nioSSL_peerCertificate().get()?.toDERBytes()
    }

    func waitForClose(
        timeout: TimeAmount = .seconds(10),
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws {
        try await self.wait("close", timeout: timeout, file: file, line: line) { $0.closed }
    }

    func close() async {
        try? await self.channel.close()
    }

    /// Stops reading the socket from now on: a client that stalls after its head (over TLS it then never
    /// answers the server's `close_notify` either).
    func stopReading() async throws {
        try await self.channel.setOption(ChannelOptions.autoRead, value: false).get()
    }

    private final class Recorder: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        let client: TestSSEClient
        var reader = SSEBodyReader()

        init(client: TestSSEClient) { self.client = client }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .handshakeCompleted(let negotiated) = event as? TLSUserEvent {
                self.client.state.withLockedValue { $0.negotiatedALPN = negotiated }
            }
            context.fireUserInboundEventTriggered(event)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.client.state.withLockedValue { $0.head = head }
            case .body(let buffer):
                if self.client.inflater != nil { self.client.compressedBytes += buffer.readableBytes }
                switch self.reader.read(buffer, inflater: self.client.inflater, recordBody: self.client.recordBody) {
                case .inflateFailed(let message):
                    self.client.state.withLockedValue { $0.body += message }
                case .read(let text, let parsed):
                    self.client.state.withLockedValue {
                        $0.body += text
                        $0.events += parsed
                    }
                }
            case .end:
                self.client.state.withLockedValue { $0.ended = true }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.client.state.withLockedValue { $0.closed = true }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }
}

/// Sends raw bytes on a new connection and returns everything the server sends until it closes or
/// `timeout` passes (for status codes, malformed requests, HTTP/1.0).
/// `from` binds the client's end to another loopback address (127.0.0.2, …) to act as another client.
func rawExchange(
    port: Int,
    _ request: String,
    group: EventLoopGroup,
    timeout: TimeAmount = .seconds(3),
    closeAfter: Bool = false,
    from: String? = nil
) async throws -> (response: String, closedByServer: Bool) {
    let connection = try await RawConnection.connect(port: port, group: group, from: from)
    if !request.isEmpty {
        try await connection.send(request)
    }
    try await waitUntil(timeout: timeout) { connection.isClosed }
    let result = (response: connection.text, closedByServer: connection.isClosed)
    await connection.closeAndWait()
    return result
}
