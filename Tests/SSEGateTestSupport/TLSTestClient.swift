import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import XCTest

/// Client TLS configurations for the listener tests: the test CA as the only trust root, the given ALPN
/// offer and TLS version range.
enum TLSTestConfig {
    static func client(
        trusting certificates: TestCertificates,
        alpn: [String] = [],
        minimum: TLSVersion? = nil,
        maximum: TLSVersion? = nil
    ) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificates.caCertificate))
        tls.certificateVerification = .fullVerification
        tls.applicationProtocols = alpn
        if let minimum { tls.minimumTLSVersion = minimum }
        if let maximum { tls.maximumTLSVersion = maximum }
        return tls
    }

    /// DER bytes of the first certificate of a PEM file (to compare with a peer certificate).
    static func der(ofPEMFile path: String) throws -> [UInt8] {
        try XCTUnwrap(try NIOSSLCertificate.fromPEMFile(path).first).toDERBytes()
    }
}

/// The outcome of one TLS handshake against a listener.
struct TLSHandshakeResult {
    var negotiatedALPN: String?
    var version: TLSVersion?
    var peerCertificateDER: [UInt8]?
}

/// A TCP connection to 127.0.0.1 with a TLS client handler; the promise completes with the negotiated
/// ALPN protocol when the handshake is done (or fails with its error).
private func connectWatchingHandshake(
    port: Int,
    group: EventLoopGroup,
    tls: TLSConfiguration,
    serverHostname: String
) async throws -> (Channel, EventLoopPromise<String?>) {
    let context = try NIOSSLContext(configuration: tls)
    let completed = group.next().makePromise(of: String?.self)
    let channel = try await ClientBootstrap(group: group)
        .connectTimeout(.seconds(5))
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(
                    NIOSSLClientHandler(context: context, serverHostname: serverHostname)
                )
                try channel.pipeline.syncOperations.addHandler(TLSHandshakeWatcher(promise: completed))
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    return (channel, completed)
}

/// Connects, completes a TLS handshake (or fails with the handshake's error) and closes.
func tlsHandshake(
    port: Int,
    group: EventLoopGroup,
    tls: TLSConfiguration,
    serverHostname: String = "localhost",
    timeout: TimeAmount = .seconds(5)
) async throws -> TLSHandshakeResult {
    let (channel, completed) = try await connectWatchingHandshake(
        port: port,
        group: group,
        tls: tls,
        serverHostname: serverHostname
    )
    let timer = channel.eventLoop.scheduleTask(in: timeout) { completed.fail(TestTimeout(message: "TLS handshake")) }
    defer { timer.cancel() }
    do {
        let alpn = try await completed.futureResult.get()
        let version = try await channel.nioSSL_tlsVersion().get()
        let peer = try await channel.nioSSL_peerCertificate().get()
        try? await channel.close()
        return TLSHandshakeResult(negotiatedALPN: alpn, version: version, peerCertificateDER: try peer?.toDERBytes())
    } catch {
        try? await channel.close()
        throw error
    }
}

/// Completes `promise` with the negotiated ALPN protocol when the handshake finishes; fails it with the
/// first error, or when the connection closes first.
final class TLSHandshakeWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<String?>
    private var done = false

    init(promise: EventLoopPromise<String?>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted(let negotiated) = event as? TLSUserEvent, !self.done {
            self.done = true
            self.promise.succeed(negotiated)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if !self.done {
            self.done = true
            self.promise.fail(error)
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.done {
            self.done = true
            self.promise.fail(ChannelError.ioOnClosedChannel)
        }
        context.fireChannelInactive()
    }
}

/// Completes a TLS handshake, then sends nothing; returns the negotiated protocol and how long after
/// the handshake the server closed the connection (nil: still open after `timeout`).
func tlsHandshakeThenIdle(
    port: Int,
    group: EventLoopGroup,
    tls: TLSConfiguration,
    serverHostname: String = "localhost",
    timeout: TimeAmount = .seconds(3)
) async throws -> (negotiatedALPN: String?, closedAfter: TimeAmount?) {
    let (channel, completed) = try await connectWatchingHandshake(
        port: port,
        group: group,
        tls: tls,
        serverHostname: serverHostname
    )
    let alpn = try await completed.futureResult.get()
    let handshakeDone = NIODeadline.now()
    if try await waitUntil(timeout: timeout, { !channel.isActive }) {
        return (alpn, NIODeadline.now() - handshakeDone)
    }
    try? await channel.close()
    return (alpn, nil)
}
