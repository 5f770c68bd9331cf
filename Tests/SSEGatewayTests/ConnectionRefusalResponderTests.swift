import NIOCore
import NIOEmbedded
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// What a connection over `limits.new_connections_per_second` is answered, on an embedded channel: a
/// `503` with `Retry-After` for most clients, but for a browser's `EventSource` (`Accept:
/// text/event-stream`) a stream that ends at once with a jittered `retry:`, because `EventSource`
/// reconnects after that and gives up for good after a `503`.
final class ConnectionRefusalResponderTests: XCTestCase {
    private func answer(_ request: String) throws -> (text: String, closed: Bool) {
        let channel = EmbeddedChannel(handler: ConnectionRefusalResponder())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
        try channel.writeInbound(ByteBuffer(string: request))
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        let closed = !channel.isActive
        _ = try? channel.finish()
        return (text, closed)
    }

    func testAnEventSourceGetsAStreamThatEndsWithAJitteredRetryAndItsOriginEchoed() throws {
        var retries = Set<Int>()
        for _ in 0..<20 {
            let (text, closed) = try self.answer(
                "GET /prices HTTP/1.1\r\nHost: gw\r\nACCEPT:  text/event-stream \r\nOrigin: https://app.example\r\n"
                    + "Last-Event-ID: 41\r\n\r\n"
            )
            XCTAssertTrue(text.hasPrefix("HTTP/1.1 200 OK\r\n"), text)
            XCTAssertTrue(text.contains("\r\nContent-Type: text/event-stream; charset=utf-8\r\n"), text)
            XCTAssertTrue(text.contains("\r\nAccess-Control-Allow-Origin: https://app.example\r\n"), text)
            XCTAssertTrue(text.contains("\r\nConnection: close\r\n"), text)
            XCTAssertTrue(closed, "the connection closes after the answer")
            let body = try XCTUnwrap(text.components(separatedBy: "\r\n\r\n").last)
            XCTAssertTrue(body.hasPrefix("retry: ") && body.hasSuffix("\n\n"), body)
            let milliseconds = try XCTUnwrap(Int(body.dropFirst("retry: ".count).dropLast(2)), body)
            XCTAssertTrue((1000...2000).contains(milliseconds), "\(milliseconds)")
            XCTAssertTrue(text.contains("\r\nContent-Length: \(body.utf8.count)\r\n"), text)
            retries.insert(milliseconds)
        }
        XCTAssertGreaterThan(retries.count, 5, "jittered: \(retries.sorted())")
    }

    /// Behind a balancer that sends the PROXY protocol the header comes first, in the same read.
    func testAnEventSourceBehindAProxyProtocolHeaderIsRecognised() throws {
        let request = "GET /prices HTTP/1.1\r\nHost: gw\r\nAccept: text/event-stream\r\n\r\n"
        var v2 = ByteBuffer(bytes: [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])
        v2.writeBytes([0x21, 0x11, 0x00, 0x0C])  // PROXY, TCP over IPv4, 12 bytes of addresses
        v2.writeBytes([127, 0, 0, 2, 127, 0, 0, 1, 0x30, 0x39, 0x1F, 0x90])
        v2.writeString(request)
        XCTAssertTrue(ConnectionRefusalResponder.eventSourceRequest(v2).acceptsEventStream)
        let v1 = ByteBuffer(string: "PROXY TCP4 127.0.0.2 127.0.0.1 12345 8080\r\n" + request)
        XCTAssertTrue(ConnectionRefusalResponder.eventSourceRequest(v1).acceptsEventStream)
        let (text, _) = try self.answer(String(buffer: v1))
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 200 OK\r\n"), text)
        let retryAfter = RawConnection.parseResponses(text).first?.header("Retry-After").first
        XCTAssertTrue(["1", "2"].contains(retryAfter), "a load tool can tell it is a refusal: \(text)")
    }

    func testOtherClientsGetA503WithRetryAfter() throws {
        for request in [
            "GET /prices HTTP/1.1\r\nHost: gw\r\n\r\n",
            "GET /prices HTTP/1.1\r\nHost: gw\r\nAccept: application/json\r\nX-Accept: text/event-stream\r\n\r\n",
            // A header after the blank line is body, not head.
            "POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 31\r\n\r\nAccept: text/event-stream\r\n\r\n",
        ] {
            let (text, closed) = try self.answer(request)
            XCTAssertTrue(text.hasPrefix("HTTP/1.1 503 Service Unavailable\r\nRetry-After: "), text)
            XCTAssertTrue(closed)
        }
    }

    func testAnOriginWithControlBytesIsNotEchoed() throws {
        let (text, _) = try self.answer(
            "GET /prices HTTP/1.1\r\nAccept: text/event-stream\r\nOrigin: https://a.example\u{7}x\r\n\r\n"
        )
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 200 OK\r\n"), text)
        XCTAssertFalse(text.contains("Access-Control-Allow-Origin"), text)
    }
}
