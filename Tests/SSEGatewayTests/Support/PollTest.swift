import SSE
import XCTest

@testable import SSEGateTestSupport

/// What poll-mode tests send and check over a `RawConnection` (one-feed and multi-feed polls alike).
enum PollTest {
    /// A GET with an optional `Last-Event-ID`, as a browser's EventSource sends it.
    static func send(
        _ connection: RawConnection,
        path: String,
        lastEventID: String? = nil,
        headers: [(String, String)] = []
    ) async throws {
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if let lastEventID { request += "Last-Event-ID: \(lastEventID)\r\n" }
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        try await connection.send(request + "\r\n")
    }

    /// The events with data in `body` (what fires `onmessage`; an id-only block does not).
    static func events(_ body: String) -> [ServerSentEvent] {
        var parser = SSEParser()
        var events: [ServerSentEvent] = []
        try? parser.parse(Array(body.utf8)) { output in
            if case .event(let event) = output, event.data != nil { events.append(event) }
        }
        return events
    }

    /// A finite `text/event-stream` answer: 200, not chunked, `Content-Length` of the body.
    static func assertHead(_ response: RawConnection.Response, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(response.status, 200, file: file, line: line)
        XCTAssertEqual(response.header("Content-Type"), ["text/event-stream; charset=utf-8"], file: file, line: line)
        XCTAssertEqual(response.header("Cache-Control"), ["no-cache, no-transform"], file: file, line: line)
        XCTAssertEqual(response.header("Transfer-Encoding"), [], "never chunked", file: file, line: line)
        XCTAssertEqual(
            response.header("Content-Length"),
            [String(response.body.utf8.count)],
            file: file,
            line: line
        )
    }
}
