import NIOCore
import NIOSSL
import SSE
import XCTest

@testable import SSEGateTestSupport

/// The ways a client reaches a feed: HTTP/1.1 or HTTP/2, cleartext or TLS, plain or gzip. Tests that must
/// hold for every transport (what a client decodes equals what the feed received) loop over these.
struct StreamClientKind: CustomStringConvertible {
    enum Transport: CaseIterable {
        case http1
        case http1TLS
        case h2c
        case h2TLS
    }

    var transport: Transport
    var gzip: Bool

    static let allCompressed = Transport.allCases.map { StreamClientKind(transport: $0, gzip: true) }
    static let all = Transport.allCases.flatMap {
        [StreamClientKind(transport: $0, gzip: false), StreamClientKind(transport: $0, gzip: true)]
    }

    var description: String { "\(self.transport)\(self.gzip ? "+gzip" : "")" }
}

/// One subscription over any `StreamClientKind`, with the events it has decoded so far.
final class StreamClient: @unchecked Sendable {
    let kind: StreamClientKind
    private let http1: TestSSEClient?
    private let http2: (connection: H2TestClient, stream: H2TestStream)?

    /// Connects to the gateway's cleartext listener `port` or its TLS listener `tlsPort` and requests `path`.
    static func connect(
        _ kind: StreamClientKind,
        path: String,
        port: Int,
        tlsPort: Int,
        certificates: TestCertificates,
        group: EventLoopGroup,
        headers: [(String, String)] = [],
        recordBody: Bool = false
    ) async throws -> StreamClient {
        var headers = headers
        if kind.gzip { headers.append(("Accept-Encoding", "gzip")) }
        switch kind.transport {
        case .http1, .http1TLS:
            let tls =
                kind.transport == .http1TLS ? try TLSTestConfig.client(trusting: certificates, alpn: ["http/1.1"]) : nil
            let client = try await TestSSEClient.connect(
                port: tls == nil ? port : tlsPort,
                path: path,
                headers: headers,
                group: group,
                recordBody: recordBody,
                gunzip: kind.gzip,
                tls: tls
            )
            return StreamClient(kind: kind, http1: client, http2: nil)
        case .h2c, .h2TLS:
            let tls = kind.transport == .h2TLS ? try TLSTestConfig.client(trusting: certificates, alpn: ["h2"]) : nil
            let connection = try await H2TestClient.connect(port: tls == nil ? port : tlsPort, group: group, tls: tls)
            let stream = try await connection.request(
                path,
                headers: headers,
                scheme: tls == nil ? "http" : "https",
                recordBody: recordBody,
                gunzip: kind.gzip
            )
            return StreamClient(kind: kind, http1: nil, http2: (connection, stream))
        }
    }

    private init(kind: StreamClientKind, http1: TestSSEClient?, http2: (H2TestClient, H2TestStream)?) {
        self.kind = kind
        self.http1 = http1
        self.http2 = http2.map { (connection: $0.0, stream: $0.1) }
    }

    var events: [ServerSentEvent] {
        self.http1?.events ?? self.http2?.stream.events ?? []
    }

    /// The decoded body text (when connected with `recordBody: true`).
    var body: String {
        self.http1?.body ?? self.http2?.stream.snapshot.body ?? ""
    }

    /// Waits until the server ends the response (HTTP/1: closes the connection; HTTP/2: ends the stream).
    func waitForEnd(timeout: TimeAmount, file: StaticString = #filePath, line: UInt = #line) async throws {
        if let http1 = self.http1 { return try await http1.waitForClose(timeout: timeout, file: file, line: line) }
        _ = try await self.http2!.stream.waitForEnd(timeout: timeout, file: file, line: line)
    }

    /// The response's `Content-Encoding` values, once its head has arrived.
    func contentEncoding() async throws -> [String] {
        if let http1 = self.http1 { return try await http1.waitForHead().headers["Content-Encoding"] }
        return try await self.http2!.stream.waitForHeaders().header("content-encoding")
    }

    /// Waits until at least `count` events are decoded; fails the test after `timeout`.
    @discardableResult
    func waitForEvents(
        _ count: Int,
        timeout: TimeAmount,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> [ServerSentEvent] {
        if let http1 = self.http1 {
            return try await http1.waitForEvents(count, timeout: timeout, file: file, line: line)
        }
        return try await self.http2!.stream.waitForEvents(count, timeout: timeout, file: file, line: line)
    }

    func close() async {
        await self.http1?.close()
        await self.http2?.connection.close()
    }
}
