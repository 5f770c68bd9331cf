import Foundation
import JWTKit
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

@testable import SSEGateTestSupport

/// A JWKS endpoint in the test process: answers every GET with what `reply` says at that moment and counts the
/// requests. `stop()` closes the listener (connections are then refused) and `start()` binds the same port
/// again, for an identity provider that is down and comes back. With `tls`, it serves `https://` with the
/// test certificates' server certificate.
final class JWKSTestServer: Sendable {
    /// What every request gets until it is changed.
    struct Reply: Sendable {
        var status: HTTPResponseStatus
        var body: String
        var stall: Stall = .none

        /// Where a provider that hangs stops answering.
        enum Stall: Sendable {
            case none
            /// Reads the request and sends nothing.
            case beforeHead
            /// Sends the head and part of the body, then nothing.
            case inBody
        }

        static func stalled(_ stall: Stall) -> Reply {
            Reply(status: .ok, body: #"{"keys": ["#, stall: stall)
        }

        /// `200` with a JWKS document holding these keys (the same bytes each time).
        static func keys(_ keys: [JWK]) -> Reply {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            return Reply(status: .ok, body: String(decoding: try! encoder.encode(JWKS(keys: keys)), as: UTF8.self))
        }

        /// Any status and body (garbage, an error page).
        static func raw(status: HTTPResponseStatus, body: String) -> Reply {
            Reply(status: status, body: body)
        }
    }

    private struct State {
        var reply: Reply
        var requests = 0
        var acceptHeaders: [String] = []
        var channel: Channel?
    }

    private let state: NIOLockedValueBox<State>
    /// The port, fixed by the first bind.
    let port: Int
    private let tls: NIOSSLContext?

    var url: String { "\(self.tls == nil ? "http" : "https")://127.0.0.1:\(self.port)/.well-known/jwks.json" }
    var requests: Int { self.state.withLockedValue { $0.requests } }
    var acceptHeaders: [String] { self.state.withLockedValue { $0.acceptHeaders } }

    var reply: Reply {
        get { self.state.withLockedValue { $0.reply } }
        set { self.state.withLockedValue { $0.reply = newValue } }
    }

    private init(reply: Reply, port: Int, tls: NIOSSLContext? = nil) {
        self.state = NIOLockedValueBox(State(reply: reply))
        self.port = port
        self.tls = tls
    }

    /// A running server on an ephemeral port.
    static func start(_ reply: Reply, tls certificates: TestCertificates? = nil) async throws -> JWKSTestServer {
        let tls = try certificates.map { certificates in
            try NIOSSLContext(
                configuration: .makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(certificates.serverCertificate).map {
                        .certificate($0)
                    },
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: certificates.serverKey, format: .pem))
                )
            )
        }
        let channel = try await Self.bind(port: 0, state: nil, tls: nil)
        let server = JWKSTestServer(reply: reply, port: channel.localAddress!.port!, tls: tls)
        // The first channel had no state to answer from; replace it with one bound to the same port.
        try await channel.close()
        try await server.start()
        return server
    }

    /// A server whose port nothing listens on yet: `start()` brings it up.
    static func stopped(_ reply: Reply) async throws -> JWKSTestServer {
        let channel = try await Self.bind(port: 0, state: nil, tls: nil)
        let server = JWKSTestServer(reply: reply, port: channel.localAddress!.port!)
        try await channel.close()
        return server
    }

    func start() async throws {
        let channel = try await Self.bind(port: self.port, state: self.state, tls: self.tls)
        self.state.withLockedValue { $0.channel = channel }
    }

    func stop() async throws {
        let channel = self.state.withLockedValue { state -> Channel? in
            defer { state.channel = nil }
            return state.channel
        }
        try await channel?.close()
    }

    private static func bind(port: Int, state: NIOLockedValueBox<State>?, tls: NIOSSLContext?) async throws -> Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard let state else { return channel.close() }
                return channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
    }

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let state: NIOLockedValueBox<State>

        init(state: NIOLockedValueBox<State>) {
            self.state = state
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = self.unwrapInboundIn(data) else { return }
            let reply = self.state.withLockedValue { state -> Reply in
                state.requests += 1
                state.acceptHeaders.append(head.headers["Accept"].joined(separator: ","))
                return state.reply
            }
            let (status, body) = (reply.status, reply.body)
            if reply.stall == .beforeHead { return }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: "\(body.utf8.count + (reply.stall == .inBody ? 100 : 0))")
            // One request per connection: a stopped server must refuse the next fetch, not answer it on a
            // pooled connection.
            headers.add(name: "Connection", value: "close")
            let responseHead = HTTPResponseHead(version: head.version, status: status, headers: headers)
            context.write(self.wrapOutboundOut(.head(responseHead)), promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            if reply.stall == .inBody { return context.flush() }
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
