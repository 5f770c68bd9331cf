import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Many short connections at once, for the leak and flood tests: runs `body(index)` `count` times with
/// at most `concurrency` running together.
func churn(_ count: Int, concurrency: Int = 32, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var next = 0
        while next < min(concurrency, count) {
            let index = next
            group.addTask { try await body(index) }
            next += 1
        }
        while try await group.next() != nil {
            if next < count {
                let index = next
                group.addTask { try await body(index) }
                next += 1
            }
        }
    }
}

/// One connection that sends `request` (nothing when nil) and returns what it received when the server
/// closes it, or when `timeout` passes (then `closedByServer` is false). `closeAfterHead`: the client
/// closes as soon as a whole response head arrived (a stream that is opened and left).
func oneShotConnection(
    port: Int,
    group: EventLoopGroup,
    request: String?,
    tls: NIOSSLContext? = nil,
    closeAfterHead: Bool = false,
    timeout: TimeAmount = .seconds(5)
) async throws -> (response: String, closedByServer: Bool) {
    let collector = OneShotCollector(closeAfterHead: closeAfterHead)
    let channel = try await ClientBootstrap(group: group)
        .connectTimeout(.seconds(5))
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                if let tls {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLClientHandler(context: tls, serverHostname: "localhost")
                    )
                }
                try channel.pipeline.syncOperations.addHandler(collector)
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    let timer = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    if let request {
        channel.writeAndFlush(ByteBuffer(string: request), promise: nil)
    }
    try? await channel.closeFuture.get()
    timer.cancel()
    return collector.result.withLockedValue { ($0.text, $0.closedByServer) }
}

/// Collects a one-shot connection's response; see `oneShotConnection`.
private final class OneShotCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    /// Written on the channel's loop, read after its close.
    let result = NIOLockedValueBox((text: "", closedByServer: false))
    private let closeAfterHead: Bool
    private var closing = false

    init(closeAfterHead: Bool) {
        self.closeAfterHead = closeAfterHead
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        let text = self.result.withLockedValue { result -> String in
            result.text += String(buffer: buffer)
            return result.text
        }
        if self.closeAfterHead, !self.closing, text.contains("\r\n\r\n") {
            self.closing = true
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.closing {
            self.result.withLockedValue { $0.closedByServer = true }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// The resident set size of this process, from `/proc/self/statm` (Linux), after giving the allocator's
/// free pages back (`malloc_trim`), so that what is counted is what is still allocated.
func residentBytes() -> Int {
    #if os(Linux)
    _ = glibcMallocTrim(0)
    #endif
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

#if os(Linux)
/// glibc's `malloc_trim` (not in the Glibc module map).
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32
#endif

/// Waits (up to 3 s, without failing) until no handler or session is alive: a previous test's gateway
/// may still be closing its connections, which would move the counts a leak test compares.
func waitUntilNoLiveObjects() async throws {
    let idle = LiveObjects.Snapshot(
        http1Connections: 0,
        http2Connections: 0,
        http2Streams: 0,
        sessions: 0,
        pollExchanges: 0
    )
    try await waitUntil(timeout: .seconds(3), interval: .milliseconds(10)) { LiveObjects.snapshot == idle }
}

/// True in a build with `--sanitize=address`: its quarantine keeps freed memory resident on purpose, so
/// resident-size bounds mean nothing there (LeakSanitizer checks for leaks instead).
var isAddressSanitized: Bool {
    dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__asan_init") != nil
}
