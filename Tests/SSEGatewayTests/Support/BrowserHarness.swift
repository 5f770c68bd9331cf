import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

@testable import SSEGateTestSupport

/// A page server and a headless Chromium for tests of what a real browser's EventSource sees: the
/// server hands out one HTML page, answers other GETs with `responder` (tokens made when the page asks),
/// and collects the JSON reports the page POSTs back.
///
/// `@unchecked Sendable`: `channel` and `browser` are set by `serve()`/`open()` and read by `stop()`, which a
/// test calls in that order from one task; `reports` is behind its lock.
final class BrowserHarness: @unchecked Sendable {
    /// Answers a GET for a path other than `/` (the request target, query included); nil is a 404.
    typealias Responder = @Sendable (String) async -> String?

    private let group: EventLoopGroup
    private var channel: Channel?
    private let reports = NIOLockedValueBox<[String]>([])
    private var browser: Process?
    private let profile: URL
    private let responder: Responder?
    /// More command-line switches for Chromium (`--ignore-certificate-errors` for a test CA).
    private let chromiumArguments: [String]
    let page: String

    init(page: String, group: EventLoopGroup, responder: Responder? = nil, chromiumArguments: [String] = []) {
        self.page = page
        self.group = group
        self.responder = responder
        self.chromiumArguments = chromiumArguments
        self.profile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ssegate-chromium-\(UUID().uuidString)"
        )
    }

    var received: [String] { self.reports.withLockedValue { $0 } }

    /// Serves the page on 127.0.0.1 and opens it in headless Chromium.
    func start() async throws {
        _ = try await self.serve()
        try self.open()
    }

    /// Serves the page on 127.0.0.1 without opening it yet; returns the page's origin (`http://127.0.0.1:PORT`),
    /// for a gateway that must know it (CORS) before the page runs. Skips the test when Chromium is missing.
    func serve() async throws -> String {
        _ = try ExternalTool.chromium.require()
        let page = self.page
        let reports = self.reports
        let responder = self.responder
        let channel = try await ServerBootstrap(group: self.group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(
                        PageHandler(page: page, reports: reports, responder: responder)
                    )
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.channel = channel
        return "http://127.0.0.1:\(channel.localAddress!.port!)"
    }

    /// Opens the served page in headless Chromium; `query` (`?a=1`) is the page's `location.search`.
    func open(query: String = "") throws {
        guard let port = self.channel?.localAddress?.port else { preconditionFailure("open() before serve()") }
        try self.open(url: "http://127.0.0.1:\(port)/\(query)")
    }

    /// Opens `url` in headless Chromium (the served page through a proxy in front of it).
    func open(url: String) throws {
        let chromium = try ExternalTool.chromium.require()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        process.arguments =
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                "--user-data-dir=\(self.profile.path)",
            ] + self.chromiumArguments + [url]
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
        let responder: Responder?
        var head: HTTPRequestHead?
        var body = ""

        init(page: String, reports: NIOLockedValueBox<[String]>, responder: Responder?) {
            self.page = page
            self.reports = reports
            self.responder = responder
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
                if head.method == .POST {
                    let body = self.body
                    self.reports.withLockedValue { $0.append(body) }
                    Self.respond(context, head, .ok, "")
                } else if head.uri == "/" || head.uri.hasPrefix("/?") {
                    Self.respond(context, head, .ok, self.page, type: "text/html; charset=utf-8")
                } else if let responder = self.responder {
                    let promise = context.eventLoop.makePromise(of: String?.self)
                    promise.completeWithTask { await responder(head.uri) }
                    let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                    promise.futureResult.whenSuccess { text in
                        Self.respond(bound.value, head, text == nil ? .notFound : .ok, text ?? "")
                    }
                } else {
                    Self.respond(context, head, .notFound, "")
                }
            }
        }

        private static func respond(
            _ context: ChannelHandlerContext,
            _ head: HTTPRequestHead,
            _ status: HTTPResponseStatus,
            _ text: String,
            type: String = "text/plain"
        ) {
            let headers = HTTPHeaders([
                ("Content-Type", type), ("Content-Length", String(text.utf8.count)), ("Cache-Control", "no-store"),
            ])
            let responseHead = HTTPResponseHead(version: head.version, status: status, headers: headers)
            context.write(NIOAny(HTTPServerResponsePart.head(responseHead)), promise: nil)
            context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
        }
    }
}
