import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

/// A raw TCP connection on 127.0.0.1: send bytes whenever, read everything the server sends (for status
/// codes, malformed requests, keep-alive, HTTP/1.0, the admin server).
final class RawConnection: @unchecked Sendable {
    struct Response {
        var status: Int
        var headers: [(String, String)]
        var body: String

        func header(_ name: String) -> [String] {
            self.headers.filter { $0.0.lowercased() == name.lowercased() }.map { $0.1 }
        }
    }

    private final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox((bytes: [UInt8](), closed: false))
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = self.unwrapInboundIn(data)
            self.received.withLockedValue { $0.bytes += buffer.readableBytesView }
        }
        func channelInactive(context: ChannelHandlerContext) {
            self.received.withLockedValue { $0.closed = true }
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }

    private let channel: Channel
    private let collector: Collector

    private init(channel: Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
    }

    /// `from` binds the client's end to another loopback address (127.0.0.2, …) to act as another client.
    static func connect(port: Int, group: EventLoopGroup, from: String? = nil) async throws -> RawConnection {
        let collector = Collector()
        var bootstrap = ClientBootstrap(group: group).connectTimeout(.seconds(5))
        if let from {
            bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: from, port: 0))
        }
        let channel =
            try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawConnection(channel: channel, collector: collector)
    }

    var text: String { self.collector.received.withLockedValue { String(decoding: $0.bytes, as: UTF8.self) } }
    /// Everything received, as sent (a gzip body is not text).
    var bytes: [UInt8] { self.collector.received.withLockedValue { $0.bytes } }
    var isClosed: Bool { self.collector.received.withLockedValue { $0.closed } }

    func send(_ text: String) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    func send(bytes: [UInt8]) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    func close() {
        self.channel.close(promise: nil)
    }

    func closeAndWait() async {
        try? await self.channel.close()
    }

    @discardableResult
    func wait(
        _ message: String,
        timeout: TimeAmount = .seconds(5),
        file: StaticString = #filePath,
        line: UInt = #line,
        until condition: (String, Bool) -> Bool
    ) async throws -> String {
        try await poll(
            message,
            timeout: timeout,
            file: file,
            line: line,
            read: { (text: self.text, closed: self.isClosed) },
            describe: { "closed: \($0.closed), received: \($0.text.prefix(500).debugDescription)" },
            until: { condition($0.text, $0.closed) }
        ).text
    }

    func waitForResponses(
        _ count: Int,
        headOnly: Bool = false,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> [Response] {
        let text = try await self.wait("\(count) responses", file: file, line: line) { text, _ in
            Self.parseResponses(text, headOnly: headOnly).count >= count
        }
        return Self.parseResponses(text, headOnly: headOnly)
    }

    /// Complete responses in `text`: bodies by Content-Length (none for HEAD/204/304); `streaming` takes
    /// everything after a head without Content-Length as its body.
    static func parseResponses(_ text: String, headOnly: Bool = false, streaming: Bool = false) -> [Response] {
        var bytes = Array(text.utf8)[...]
        var responses: [Response] = []
        let terminator: [UInt8] = Array("\r\n\r\n".utf8)
        while !bytes.isEmpty {
            guard
                let end = bytes.indices.first(where: { index in
                    index + 4 <= bytes.endIndex && Array(bytes[index..<index + 4]) == terminator
                })
            else { break }
            let headText = String(decoding: bytes[bytes.startIndex..<end], as: UTF8.self)
            var lines = headText.components(separatedBy: "\r\n")
            let statusLine = lines.removeFirst().split(separator: " ")
            guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/"), let status = Int(statusLine[1]) else {
                break
            }
            let headers = lines.compactMap { line -> (String, String)? in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            var response = Response(status: status, headers: headers, body: "")
            var rest = bytes[(end + 4)...]
            if headOnly || status == 204 || status == 304 {
                // no body
            } else if let length = response.header("Content-Length").first.flatMap(Int.init) {
                guard rest.count >= length else { break }
                response.body = String(decoding: rest.prefix(length), as: UTF8.self)
                rest = rest.dropFirst(length)
            } else if streaming {
                response.body = String(decoding: rest, as: UTF8.self)
                rest = rest.suffix(0)
            } else {
                break
            }
            responses.append(response)
            bytes = rest
        }
        return responses
    }
}
