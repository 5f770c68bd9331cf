import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

@testable import SSEGateTestSupport

/// A page server and a headless Chromium for tests of what a real browser's EventSource sees: the
/// server hands out one HTML page and collects the JSON reports the page POSTs back.
final class BrowserHarness: @unchecked Sendable {
    private let group: EventLoopGroup
    private var channel: Channel?
    private let reports = NIOLockedValueBox<[String]>([])
    private var browser: Process?
    private let profile: URL
    let page: String

    init(page: String, group: EventLoopGroup) {
        self.page = page
        self.group = group
        self.profile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ssegate-chromium-\(UUID().uuidString)"
        )
    }

    var received: [String] { self.reports.withLockedValue { $0 } }

    /// Serves the page on 127.0.0.1 and opens it in headless Chromium.
    func start() async throws {
        let port = try await self.serve()
        try self.open("http://127.0.0.1:\(port)/")
    }

    /// Serves the page (at `/`, reports POSTed anywhere) on 127.0.0.1 and returns the port, for a test
    /// that puts a proxy in front of it and opens the page there. Skips the test where Chromium is missing.
    func serve() async throws -> Int {
        _ = try ExternalTool.chromium.require()
        let page = self.page
        let reports = self.reports
        let channel = try await ServerBootstrap(group: self.group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(PageHandler(page: page, reports: reports))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.channel = channel
        return channel.localAddress!.port!
    }

    /// Opens `url` in headless Chromium.
    func open(_ url: String) throws {
        let chromium = try ExternalTool.chromium.require()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        process.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--user-data-dir=\(self.profile.path)", url,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.browser = process
    }

    func stop() async {
        if let browser = self.browser, browser.isRunning {
            kill(browser.processIdentifier, SIGKILL)
            browser.waitUntilExit()
        }
        try? await self.channel?.close()
        try? FileManager.default.removeItem(at: self.profile)
    }

    private final class PageHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let page: String
        let reports: NIOLockedValueBox<[String]>
        var head: HTTPRequestHead?
        var body = ""

        init(page: String, reports: NIOLockedValueBox<[String]>) {
            self.page = page
            self.reports = reports
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                self.body = ""
            case .body(let buffer):
                self.body += String(buffer: buffer)
            case .end:
                guard let head = self.head else { return }
                var text = ""
                var type = "text/plain"
                if head.method == .POST {
                    let body = self.body
                    self.reports.withLockedValue { $0.append(body) }
                } else if head.uri == "/" {
                    text = self.page
                    type = "text/html; charset=utf-8"
                }
                let headers = HTTPHeaders([
                    ("Content-Type", type), ("Content-Length", String(text.utf8.count)), ("Cache-Control", "no-store"),
                ])
                context.write(
                    self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))),
                    promise: nil
                )
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
