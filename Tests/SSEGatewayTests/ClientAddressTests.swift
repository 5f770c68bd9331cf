import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Real client addresses against a running gateway (issue 14, item 1) and the per-address stream limit
/// (item 3): a PROXY header's source is the stream's address; a `proxy_protocol` listener closes a
/// connection without one; forwarding headers count only from `trusted_proxies`, over HTTP/1.1 and HTTP/2;
/// one address over `max_clients_per_address` gets 503 while 50 normal clients stream and lose nothing.
final class ClientAddressTests: XCTestCase {
    override func setUp() async throws {
        try await waitUntilNoLiveObjects()
    }

    /// A plain listener (index 0) and a `proxy_protocol` one (index 1).
    private func start(configure: @escaping (inout GatewayConfig) -> Void = { _ in }) async throws -> Harness {
        try await Harness.start(
            configure: { config in
                config.listen.append(
                    ListenerConfig(address: HostPort(host: "127.0.0.1", port: 0), proxyProtocol: true)
                )
                config.limits.headerTimeout = .milliseconds(500)
                configure(&config)
            },
            feeds: { origin in
                [try Harness.feed("/prices", upstream: "\(origin)/prices") { $0.settings.retry = .seconds(2) }]
            }
        )
    }

    private func proxyPort(_ harness: Harness) -> Int { harness.gateway.listenerAddresses[1].port! }

    private func metrics(_ harness: Harness) async throws -> String {
        try await harness.gateway.metrics.render(on: harness.group.next()).get()
    }

    // MARK: PROXY protocol

    func testAStreamBehindAPROXYHeaderHasTheHeadersSourceAddress() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let port = self.proxyPort(harness)

        let v1 = try await RawConnection.connect(port: port, group: harness.clientGroup)
        try await v1.send(
            "PROXY TCP4 198.51.100.20 127.0.0.1 40000 \(port)\r\nGET /prices HTTP/1.1\r\nHost: gw\r\n\r\n"
        )
        try await v1.wait("the v1 stream's head") { text, _ in text.contains("retry: 2000") }
        XCTAssertTrue(v1.text.hasPrefix("HTTP/1.1 200 OK\r\n"), v1.text)

        // HAProxy's `send-proxy-v2` for an IPv6 client, then the request in a later write.
        let v2 = try await RawConnection.connect(port: port, group: harness.clientGroup)
        let header: [UInt8] =
            [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x21, 0x00, 36]
            + [0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [0x20]
            + [0xFD] + Array(repeating: 0, count: 14) + [1] + [0x9C, 0x40, 0x1F, 0x90]
        try await v2.send(bytes: header)
        try await v2.send("GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        try await v2.wait("the v2 stream's head") { text, _ in text.contains("retry: 2000") }

        try await eventually("both streams counted at their PROXY source") {
            harness.gateway.context.streams(of: "198.51.100.20") == 1
                && harness.gateway.context.streams(of: "2001:db8::20") == 1
        }
        XCTAssertEqual(harness.gateway.context.streams(of: "127.0.0.1"), 0, "not at the balancer's address")
        _ = harness.origin.publish(data: "through the balancer")
        try await v1.wait("an event on the v1 stream") { text, _ in text.contains("data: through the balancer") }
        try await v2.wait("an event on the v2 stream") { text, _ in text.contains("data: through the balancer") }
        v1.close()
        v2.close()
    }

    /// Connections without a valid header, or too slow to send one, are closed before any HTTP, while 50
    /// clients stream through the same listener behind their own PROXY headers and lose nothing.
    func testAConnectionWithoutAValidHeaderIsClosedWhileNormalClientsLoseNothing() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let port = self.proxyPort(harness)
        var normal: [RawConnection] = []
        for index in 0..<50 {
            let client = try await RawConnection.connect(port: port, group: harness.clientGroup)
            try await client.send(
                "PROXY TCP4 198.51.100.\(index + 1) 127.0.0.1 40000 \(port)\r\nGET /prices HTTP/1.1\r\nHost: gw\r\n\r\n"
            )
            normal.append(client)
        }
        try await harness.waitUntilJoined(50)

        var attackers: [RawConnection] = []
        let invalid: [[UInt8]] = [
            Array("GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n".utf8),
            Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8),
            [0x16, 0x03, 0x01, 0x00, 0xA5, 0x01],
            Array("PROXY TCP4 198.51.100.1 127.0.0.1 99999 1\r\n".utf8),
            Array("PROXY TCP4 198.51.100.1 127.0.0.1 1 2\n".utf8),
            [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0xFF, 0xF0],
        ]
        for bytes in invalid {
            let attacker = try await RawConnection.connect(port: port, group: harness.clientGroup)
            try await attacker.send(bytes: bytes)
            attackers.append(attacker)
        }
        for attacker in attackers {
            try await attacker.wait("closed", timeout: .seconds(2)) { _, closed in closed }
            XCTAssertEqual(attacker.text, "", "nothing is answered")
        }
        let slow = try await RawConnection.connect(port: port, group: harness.clientGroup)
        try await slow.send("PROXY TCP4 198.51.100.20 ")
        try await slow.wait("closed after the header timeout", timeout: .seconds(3)) { _, closed in closed }

        let metrics = try await self.metrics(harness)
        XCTAssertTrue(metrics.contains("ssegate_proxy_protocol_rejected_total{reason=\"invalid\"} 6"), metrics)
        XCTAssertTrue(metrics.contains("ssegate_proxy_protocol_rejected_total{reason=\"timeout\"} 1"), metrics)

        for index in 1...20 { _ = harness.origin.publish(data: "event \(index)") }
        let expected = (1...20).map { "data: event \($0)\n" }.joined(separator: "")
        for (index, client) in normal.enumerated() {
            let text = try await client.wait("every event at normal client \(index)") { text, _ in
                text.contains("data: event 20\n")
            }
            let received = text.split(separator: "\n").filter { $0.hasPrefix("data: event ") }.map { "\($0)\n" }
            XCTAssertEqual(received.joined(separator: ""), expected, "normal client \(index)")
            XCTAssertTrue(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        }
        XCTAssertEqual(harness.gateway.context.streams(of: "198.51.100.50"), 1)

        // The plain listener is not affected.
        let plain = try await harness.client("/prices")
        let plainStatus = try await plain.waitForHead().status
        XCTAssertEqual(plainStatus, .ok)
        await plain.close()
        for client in normal { client.close() }
    }

    /// A reload that turns `proxy_protocol` on keeps the listener's socket and its open streams; new
    /// connections must then send the header.
    func testAReloadTurnsProxyProtocolOnForNewConnections() async throws {
        let harness = try await self.start()
        self.addTeardownBlock { await harness.stop() }
        let open = try await harness.client("/prices")
        try await harness.waitUntilJoined(1)

        var config = harness.gateway.config
        config.listen[0].proxyProtocol = true
        let (_, errors) = await harness.gateway.reload(config)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(harness.gateway.listenerAddresses[0].port, harness.port, "the same socket")

        let direct = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        try await direct.send("GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        try await direct.wait("closed", timeout: .seconds(2)) { _, closed in closed }
        XCTAssertEqual(direct.text, "")
        let proxied = try await RawConnection.connect(port: harness.port, group: harness.clientGroup)
        try await proxied.send("PROXY TCP4 198.51.100.60 127.0.0.1 1 2\r\nGET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")
        try await proxied.wait("the stream's head") { text, _ in text.contains("retry: 2000") }

        _ = harness.origin.publish(data: "after the reload")
        let events = try await open.waitForEvents(1)
        XCTAssertEqual(events.last?.data, "after the reload", "the stream open before the reload goes on")
        await open.close()
        proxied.close()
    }

    // MARK: trusted_proxies

    func testForwardedForCountsOnlyFromTrustedProxies() async throws {
        let harness = try await self.start { config in
            config.limits.trustedProxies = TrustedProxies(["127.0.0.1/32", "10.0.0.0/8"])!
        }
        self.addTeardownBlock { await harness.stop() }
        let context = harness.gateway.context

        // From 127.0.0.1 (trusted), HTTP/1.1: the first untrusted hop from the right.
        let trusted = try await harness.client(
            "/prices",
            headers: [("X-Forwarded-For", "6.6.6.6, 198.51.100.30, 10.1.1.1")]
        )
        // From 127.0.0.2 (not trusted): its header is ignored.
        let untrusted = try await RawConnection.connect(
            port: harness.port,
            group: harness.clientGroup,
            from: "127.0.0.2"
        )
        try await untrusted.send("GET /prices HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: 198.51.100.31\r\n\r\n")
        // HTTP/2 from a trusted peer, with RFC 7239 Forwarded and a quoted IPv6 node.
        let h2 = try await H2TestClient.connect(port: harness.port, group: harness.clientGroup)
        let stream = try await h2.request("/prices", headers: [("Forwarded", "for=\"[2001:db8::32]:4711\"")])
        _ = try await stream.waitForHeaders()
        // Through the PROXY listener: the header's source (10.2.2.2) is trusted, so its XFF counts; a source
        // that is not trusted (203.0.113.5) keeps its own address.
        let port = self.proxyPort(harness)
        let viaBalancer = try await RawConnection.connect(port: port, group: harness.clientGroup)
        try await viaBalancer.send(
            "PROXY TCP4 10.2.2.2 127.0.0.1 1 \(port)\r\nGET /prices HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: 198.51.100.33\r\n\r\n"
        )
        let spoofing = try await RawConnection.connect(port: port, group: harness.clientGroup)
        try await spoofing.send(
            "PROXY TCP4 203.0.113.5 127.0.0.1 1 \(port)\r\nGET /prices HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: 198.51.100.34\r\n\r\n"
        )

        try await eventually("every stream counted at its real address") {
            context.streams(of: "198.51.100.30") == 1 && context.streams(of: "127.0.0.2") == 1
                && context.streams(of: "2001:db8::32") == 1 && context.streams(of: "198.51.100.33") == 1
                && context.streams(of: "203.0.113.5") == 1
        }
        for ignored in ["6.6.6.6", "10.1.1.1", "198.51.100.31", "198.51.100.34", "127.0.0.1", "10.2.2.2"] {
            XCTAssertEqual(context.streams(of: ignored), 0, ignored)
        }
        await trusted.close()
        untrusted.close()
        await h2.close()
        viaBalancer.close()
        spoofing.close()
    }

    // MARK: max_clients_per_address

    /// One address opens 20 streams with a limit of 5: 5 stream, 15 get 503 with a jittered Retry-After;
    /// an untrusted client cannot escape the limit by varying X-Forwarded-For; 50 normal clients (each its
    /// own address, through a trusted proxy) all stream and receive every event.
    func testOneAddressOverTheLimitIsRefusedWhileNormalClientsLoseNothing() async throws {
        let harness = try await self.start { config in
            config.limits.trustedProxies = TrustedProxies(["127.0.0.1/32"])!
            config.limits.maxClientsPerAddress = 5
        }
        self.addTeardownBlock { await harness.stop() }

        var normal: [TestSSEClient] = []
        for index in 0..<50 {
            normal.append(
                try await harness.client("/prices", headers: [("X-Forwarded-For", "198.51.100.\(index + 1)")])
            )
        }
        try await harness.waitUntilJoined(50)

        // The attacker behind the trusted proxy: one address.
        var attacker: [TestSSEClient] = []
        for _ in 0..<20 {
            attacker.append(try await harness.client("/prices", headers: [("X-Forwarded-For", "203.0.113.66")]))
        }
        var statuses: [UInt] = []
        var retryAfters = Set<Int>()
        for client in attacker {
            let head = try await client.waitForHead()
            statuses.append(head.status.code)
            if head.status == .serviceUnavailable {
                let retryAfter = try XCTUnwrap(head.headers.first(name: "Retry-After").flatMap(Int.init))
                XCTAssertTrue((2...4).contains(retryAfter), "retry 2s, jittered up to twice: \(retryAfter)")
                retryAfters.insert(retryAfter)
            }
        }
        XCTAssertEqual(statuses.filter { $0 == 200 }.count, 5, "\(statuses)")
        XCTAssertEqual(statuses.filter { $0 == 503 }.count, 15, "\(statuses)")
        XCTAssertGreaterThan(retryAfters.count, 1, "jittered: \(retryAfters)")

        // An untrusted client varying its X-Forwarded-For is still one address.
        var spoofers: [RawConnection] = []
        for index in 0..<8 {
            let spoofer = try await RawConnection.connect(
                port: harness.port,
                group: harness.clientGroup,
                from: "127.0.0.3"
            )
            try await spoofer.send("GET /prices HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: 192.0.2.\(index)\r\n\r\n")
            try await spoofer.wait("an answer") { text, _ in text.contains("\r\n\r\n") }
            spoofers.append(spoofer)
        }
        let spoofed = spoofers.map { $0.text.hasPrefix("HTTP/1.1 200") }
        XCTAssertEqual(spoofed.filter { $0 }.count, 5, "\(spoofers.map { $0.text.prefix(20) })")
        XCTAssertEqual(harness.gateway.context.streams(of: "127.0.0.3"), 5)

        let metrics = try await self.metrics(harness)
        XCTAssertTrue(metrics.contains("ssegate_clients_per_address_refused_total 18"), metrics)

        // Every normal client receives every event published meanwhile.
        for index in 1...20 { _ = harness.origin.publish(data: "event \(index)") }
        for (index, client) in normal.enumerated() {
            let events = try await client.waitForEvents(20)
            XCTAssertEqual(events.map(\.data), (1...20).map { "event \($0)" }, "normal client \(index)")
        }

        // A refused address gets in again once one of its streams ends.
        await attacker[statuses.firstIndex(of: 200)!].close()
        try await eventually("a slot of 203.0.113.66 is free") {
            harness.gateway.context.streams(of: "203.0.113.66") == 4
        }
        let again = try await harness.client("/prices", headers: [("X-Forwarded-For", "203.0.113.66")])
        let againStatus = try await again.waitForHead().status
        XCTAssertEqual(againStatus, .ok)

        for client in normal + attacker + [again] { await client.close() }
        for spoofer in spoofers { spoofer.close() }
    }

    /// A multi-feed stream takes one slot of its address per feed, as it takes `max_clients` slots, and
    /// gives them all back when it ends.
    func testAMultiFeedStreamTakesOneSlotPerFeed() async throws {
        let harness = try await Harness.start(
            configure: { config in
                config.limits.trustedProxies = TrustedProxies(["127.0.0.1/32"])!
                config.limits.maxClientsPerAddress = 3
            },
            feeds: { origin in
                [try Harness.feed("/a", upstream: "\(origin)/a"), try Harness.feed("/b", upstream: "\(origin)/b")]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        let context = harness.gateway.context
        let from = [("X-Forwarded-For", "198.51.100.9")]

        let multi = try await harness.client("/multi?feed=/a&feed=/b", headers: from)
        let multiStatus = try await multi.waitForHead().status
        XCTAssertEqual(multiStatus, .ok)
        XCTAssertEqual(context.streams(of: "198.51.100.9"), 2)

        let second = try await harness.client("/multi?feed=/a&feed=/b", headers: from)
        let secondHead = try await second.waitForHead()
        XCTAssertEqual(secondHead.status, .serviceUnavailable)
        XCTAssertNotNil(secondHead.headers.first(name: "Retry-After"))
        try await second.waitForClose()
        XCTAssertTrue(second.body.contains("too many streams from this address"), second.body)
        XCTAssertEqual(context.streams(of: "198.51.100.9"), 2, "a refused multi takes nothing")
        XCTAssertEqual(context.clientCount, 2, "nor max_clients slots")

        let single = try await harness.client("/a", headers: from)
        let singleStatus = try await single.waitForHead().status
        XCTAssertEqual(singleStatus, .ok)
        XCTAssertEqual(context.streams(of: "198.51.100.9"), 3)

        await multi.close()
        try await eventually("the multi stream's slots are back") { context.streams(of: "198.51.100.9") == 1 }
        await single.close()
        try await eventually("every slot is back") { context.streams(of: "198.51.100.9") == 0 }
    }

    /// On a TLS listener the PROXY header comes before the TLS handshake (as HAProxy sends it in front of a
    /// TLS backend): the handshake and the stream work, and the stream is at the header's source.
    func testAPROXYHeaderBeforeTLS() async throws {
        let certificates = try TestCertificates.make(keyType: .ecdsa)
        let harness = try await self.start { config in
            var listener = TLSTestConfig.listener(certificates)
            listener.proxyProtocol = true
            config.listen.append(listener)
        }
        self.addTeardownBlock { await harness.stop() }
        let port = harness.gateway.listenerAddresses[2].port!
        let context = try NIOSSLContext(configuration: try TLSTestConfig.client(trusting: certificates))
        let received = NIOLockedValueBox("")
        let channel = try await ClientBootstrap(group: harness.clientGroup)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(HeaderFirst(header: "PROXY TCP6 2001:db8::44 ::1 40000 \(port)\r\n"))
                    try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                    try sync.addHandler(Collect(received: received))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        // Held by the TLS handler until its handshake is done.
        try await channel.writeAndFlush(ByteBuffer(string: "GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n")).get()
        try await eventually("the stream's head over TLS") { received.withLockedValue { $0.contains("retry: 2000") } }
        XCTAssertTrue(received.withLockedValue { $0.hasPrefix("HTTP/1.1 200 OK\r\n") })
        XCTAssertEqual(harness.gateway.context.streams(of: "2001:db8::44"), 1)
        try? await channel.close()
    }
}

/// Writes `header` to the socket as the connection opens, before the handlers behind it (the TLS
/// handler's ClientHello) write anything.
private final class HeaderFirst: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let header: String
    init(header: String) { self.header = header }
    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(NIOAny(ByteBuffer(string: self.header)), promise: nil)
        context.fireChannelActive()
    }
}

/// Keeps the decrypted bytes as text.
private final class Collect: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let received: NIOLockedValueBox<String>
    init(received: NIOLockedValueBox<String>) { self.received = received }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let text = String(buffer: self.unwrapInboundIn(data))
        self.received.withLockedValue { $0 += text }
    }
}
