import Logging
import NIOCore
import NIOEmbedded
import SSE
import XCTest

@testable import SSEGateway

/// The upstream connection's pipeline (NIO's HTTP client codec, the idle timer and `UpstreamStreamHandler`,
/// as `UpstreamClient` builds it) on an embedded channel that the client opens through its `openChannel`
/// seam: request bytes out, response bytes in, events and failures reported to the feed.
final class UpstreamStreamHandlerTests: XCTestCase {
    /// What the client reports to its feed.
    private final class RecordingDelegate: UpstreamDelegate {
        var batches: [[ServerSentEvent]] = []
        var failures: [UpstreamFailure] = []
        var states: [UpstreamStateMachine.State] = []

        func upstreamReceived(_ events: [ServerSentEvent]) { self.batches.append(events) }
        func upstreamStateChanged(_ state: UpstreamStateMachine.State, failure: UpstreamFailure?) {
            self.states.append(state)
            if let failure { self.failures.append(failure) }
        }
    }

    private let loop = EmbeddedEventLoop()
    private let delegate = RecordingDelegate()
    private var client: UpstreamClient!
    /// The channels the client opened, one per connection attempt.
    private var channels: [EmbeddedChannel] = []

    /// Starts a client for `url` whose connections are embedded channels.
    private func start(
        _ url: String = "http://up.example:8080/prices?x=1",
        configure: (inout UpstreamSettings) -> Void = { _ in }
    ) throws {
        var settings = UpstreamSettings()
        settings.backoffInitial = .milliseconds(100)
        settings.backoffMax = .seconds(1)
        configure(&settings)
        var logger = Logger(label: "upstream-test")
        logger.logLevel = .critical
        self.client = UpstreamClient(
            loop: self.loop,
            url: try UpstreamURL(parsing: url),
            settings: settings,
            tlsContext: nil,
            logger: logger
        )
        self.client.delegate = self.delegate
        let loop = self.loop
        self.client.openChannel = { [unowned self] initialize in
            let channel = EmbeddedChannel(loop: loop)
            self.channels.append(channel)
            return initialize(channel).flatMap {
                channel.connect(to: try! SocketAddress(ipAddress: "127.0.0.1", port: 8080))
            }.map { channel }
        }
        self.client.start()
        self.loop.run()
    }

    override func tearDown() {
        if let client = self.client { client.stop() }
        for channel in self.channels { _ = try? channel.finish() }
        self.channels.removeAll()
        self.client = nil
    }

    private var channel: EmbeddedChannel { self.channels.last! }

    /// Everything the client sent on the current connection.
    private func sent() throws -> String {
        var text = ""
        while let buffer = try self.channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    /// Response bytes from the upstream, in one read.
    private func receive(_ text: String) throws {
        try self.channel.writeInbound(ByteBuffer(string: text))
        self.loop.run()
    }

    private static let streamHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"

    func testTheRequestIsAnSSEGetWithTheConfiguredHeaders() throws {
        try self.start("http://user:pw@up.example:8080/prices?x=1") {
            $0.headers = [HeaderField(name: "X-Token", value: "abc")]
        }
        let request = try self.sent()
        XCTAssertTrue(request.hasPrefix("GET /prices?x=1 HTTP/1.1\r\n"), request)
        for line in [
            "Host: up.example:8080", "Accept: text/event-stream", "Cache-Control: no-cache", "User-Agent: ssegate",
            "Authorization: Basic dXNlcjpwdw==", "X-Token: abc",
        ] {
            XCTAssertTrue(request.contains("\r\n\(line)\r\n"), "\(line) in \(request)")
        }
        XCTAssertFalse(request.contains("Last-Event-ID"), "nothing to resume from yet")
    }

    /// The events of one read reach the feed as one batch, in order; the state is streaming.
    func testTheEventsOfOneReadAreOneBatch() throws {
        try self.start()
        try self.receive(Self.streamHead)
        guard case .streaming = self.client.state else { return XCTFail("\(self.client.state)") }
        try self.receive("id: 1\ndata: a\n\nid: 2\ndata: b\n\n: comment\n\n")
        try self.receive("data: c\n\n")
        XCTAssertEqual(self.delegate.batches.map { $0.map(\.data) }, [["a", "b"], ["c"]])
        XCTAssertEqual(self.client.lastEventID, "2")
        XCTAssertEqual(self.delegate.failures, [])
    }

    /// An event cut in two reads is delivered once, when it is whole.
    func testAnEventSplitAcrossReadsIsDeliveredWhole() throws {
        try self.start()
        try self.receive(Self.streamHead + "id: 1\nda")
        XCTAssertEqual(self.delegate.batches.count, 0)
        try self.receive("ta: whole\n\n")
        XCTAssertEqual(self.delegate.batches.flatMap { $0 }.map(\.data), ["whole"])
    }

    func testA204StopsWithNoContent() throws {
        try self.start()
        try self.receive("HTTP/1.1 204 No Content\r\n\r\n")
        XCTAssertEqual(self.delegate.failures, [.noContent])
        XCTAssertFalse(self.channel.isActive)
        guard case .waiting = self.client.state else { return XCTFail("\(self.client.state)") }
    }

    func testANon2xxStatusIsAFailure() throws {
        try self.start()
        try self.receive("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(self.delegate.failures, [.status(503)])
        XCTAssertFalse(self.channel.isActive)
    }

    func testAResponseThatIsNoEventStreamIsAFailure() throws {
        try self.start()
        try self.receive("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 4\r\n\r\nhi!\n")
        XCTAssertEqual(self.delegate.failures, [.contentType("text/html")])
        XCTAssertEqual(self.delegate.batches.count, 0)
        XCTAssertFalse(self.channel.isActive)
    }

    /// An event over `max_event_size` ends the connection; the events before it in the read are delivered.
    func testAnEventOverMaxEventSizeEndsTheConnection() throws {
        try self.start { $0.maxEventSize = 100 }
        try self.receive(
            Self.streamHead + "id: 1\ndata: small\n\nid: 2\ndata: \(String(repeating: "x", count: 200))\n\n"
        )
        XCTAssertEqual(self.delegate.batches.flatMap { $0 }.map(\.data), ["small"])
        XCTAssertEqual(self.delegate.failures, [.eventTooLarge])
        XCTAssertFalse(self.channel.isActive)
    }

    /// The idle timer's read event (nothing read for `idle_timeout`; SwiftNIO's `IdleStateHandler` times it
    /// on the real clock, so it is fired here directly): the connection is given up. Events already read in
    /// that burst are delivered first.
    func testTheIdleTimersReadEventEndsTheConnection() throws {
        try self.start { $0.idleTimeout = .seconds(5) }
        try self.receive(Self.streamHead + "data: before\n\n")
        self.channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.write)
        XCTAssertEqual(self.delegate.failures, [], "only a read timeout counts")
        self.channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        self.loop.run()
        XCTAssertEqual(self.delegate.batches.flatMap { $0 }.map(\.data), ["before"])
        XCTAssertEqual(self.delegate.failures, [.idleTimeout])
        XCTAssertFalse(self.channel.isActive)
    }

    /// The upstream closes the stream: after the backoff the client connects again and resumes with
    /// `Last-Event-ID` of the last event it delivered (not of an event cut off by the close).
    func testAClosedStreamReconnectsWithTheLastDeliveredEventID() throws {
        try self.start()
        try self.receive(Self.streamHead + "id: 7\ndata: seven\n\nid: 8\ndata: cut")
        try self.channel.close().wait()
        self.loop.run()
        XCTAssertEqual(self.delegate.failures, [.closed])
        XCTAssertEqual(self.channels.count, 1)
        self.loop.advanceTime(by: .seconds(1))
        XCTAssertEqual(self.channels.count, 2, "reconnected after the backoff")
        let request = try self.sent()
        XCTAssertTrue(request.contains("\r\nLast-Event-ID: 7\r\n"), request)
    }

    /// The feed stops the client: the connection closes and nothing more is reported from it.
    func testStopClosesTheConnectionAndIgnoresWhatFollows() throws {
        try self.start()
        try self.receive(Self.streamHead)
        let channel = self.channel
        self.client.stop()
        self.loop.run()
        XCTAssertFalse(channel.isActive)
        XCTAssertEqual(self.client.state, .stopped)
        XCTAssertEqual(self.delegate.failures, [], "a stop is no failure")
    }
}
