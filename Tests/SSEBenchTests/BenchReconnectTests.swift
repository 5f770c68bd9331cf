import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

@testable import SSEBench

/// `--reconnect` against a scripted server that plays a crash: every fresh stream gets `retry:` and events
/// 1...3 and is then cut off; a resumed one is first refused with `503` + `Retry-After` (half the
/// clients), then gets the events after its `Last-Event-ID` and stays open. The clients must come back,
/// wait as told, resume from the right id, and count what they got across their connections.
final class BenchReconnectTests: XCTestCase {
    private static let clients = 40

    /// What the server sends a resumed stream first, relative to the id after `Last-Event-ID`.
    private enum Resume: Int {
        case exactlyOnce = 0
        /// One event again (the last one the client had).
        case duplicate = -1
        /// One event skipped.
        case gap = 1
    }

    /// Fresh: 200, `retry: 50`, ids 1...3, close. Resumed: the first `refusals` resumes get `503`
    /// (`Retry-After: 1`) on a connection left open, as HAProxy keeps its client side open after a
    /// replica's `503` (the client must close it); the others 200 with three events from
    /// `Last-Event-ID` + 1 + `resume`, kept open.
    private final class CrashingServer: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let resume: Resume
        private let refusalsLeft: NIOLockedValueBox<Int>
        let lastEventIDs = NIOLockedValueBox<[String]>([])

        init(resume: Resume, refusals: Int) {
            self.resume = resume
            self.refusalsLeft = NIOLockedValueBox(refusals)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let request = String(buffer: self.unwrapInboundIn(data))
            guard request.contains("\r\n\r\n") else { return }  // a one-read request head on loopback
            let resumeLine = request.split(separator: "\r\n").first { $0.lowercased().hasPrefix("last-event-id:") }
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
            guard let resumeLine,
                let last = Int(resumeLine.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
            else {
                let events = (1...3).map { "id: \($0)\ndata: {\"seq\":\($0)}\n\n" }.joined()
                let channel = context.channel
                context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: head + "retry: 50\n\n" + events)))
                    .whenComplete { _ in channel.close(promise: nil) }
                return
            }
            self.lastEventIDs.withLockedValue { $0.append(String(last)) }
            let refuse = self.refusalsLeft.withLockedValue { left in
                defer { left = max(0, left - 1) }
                return left > 0
            }
            if refuse {
                let answer = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
                context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: answer)), promise: nil)
                return
            }
            let first = last + 1 + self.resume.rawValue
            let events = (first..<(first + 3)).map { "id: \($0)\ndata: {\"seq\":\($0)}\n\n" }.joined()
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: head + events)), promise: nil)
        }
    }

    private func run(_ resume: Resume) async throws -> (BenchReport, [String]) {
        let server = CrashingServer(resume: resume, refusals: Self.clients / 2)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try await ServerBootstrap(group: group).childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(server) }
        }.bind(host: "127.0.0.1", port: 0).get()
        var options = BenchOptions(url: "http://127.0.0.1:\(listener.localAddress!.port!)/feed")
        options.clients = Self.clients
        options.mode = BenchClientMode(reconnect: true)
        options.duration = 0.3
        options.headWait = 5
        let outcome: Result<BenchReport, Error>
        do {
            outcome = .success(try await BenchRunner.run(options))
        } catch {
            outcome = .failure(error)
        }
        try await listener.close()
        try await group.shutdownGracefully()
        return (try outcome.get(), server.lastEventIDs.withLockedValue { $0 })
    }

    func testClientsComeBackAfterTheirRetryAndRetryAfterAndResumeExactlyOnce() async throws {
        let started = Date()
        let (report, resumedFrom) = try await self.run(.exactlyOnce)
        let storm = try XCTUnwrap(report.storm, report.text)
        XCTAssertEqual(report.connected, Self.clients, report.text)
        XCTAssertEqual(report.missing, 0, report.text)
        XCTAssertEqual(report.duplicates, 0, report.text)
        XCTAssertEqual(report.badStatus, 0, "a 503 is a refusal, not a failure: \(report.text)")
        // Every client resumed after id 3, half of them twice (refused once).
        XCTAssertEqual(resumedFrom, Array(repeating: "3", count: Self.clients * 3 / 2))
        XCTAssertEqual(storm.refusals, Self.clients / 2, report.text)
        XCTAssertEqual(storm.reconnects, Self.clients * 3 / 2, report.text)
        XCTAssertEqual(storm.outages, Self.clients, "one outage each, through the refusal: \(report.text)")
        XCTAssertEqual(storm.unrecovered, 0, report.text)
        // The refused clients waited Retry-After (1 s), not their retry: (50 ms).
        let recovery = try XCTUnwrap(storm.fullRecoverySeconds, report.text)
        XCTAssertGreaterThanOrEqual(recovery, 1.0, report.text)
        XCTAssertLessThan(recovery, 3.0, "not held until the server closed: \(report.text)")
        XCTAssertLessThan(Double(storm.longestOutageMicros) / 1e6, recovery + 0.001)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 1.0)
        // Two opens per client, the second half of them a second after the first.
        XCTAssertEqual(storm.timeline.buckets(.opens).reduce(0, +), Self.clients * 2)
        XCTAssertEqual(storm.timeline.buckets(.connects).reduce(0, +), Self.clients * 5 / 2)
        XCTAssertGreaterThanOrEqual(storm.timeline.peakPerSecond(.opens).count, Self.clients)
        XCTAssertEqual(storm.timeline.peakPerSecond(.refusals).count, Self.clients / 2)
        XCTAssertTrue(report.json.contains("\"refusals_503\":\(Self.clients / 2)"), report.json)
        XCTAssertTrue(report.json.contains("\"unrecovered\":0"), report.json)
    }

    func testAResumeThatRepeatsOrSkipsAnEventIsCountedAcrossTheReconnect() async throws {
        let (duplicated, _) = try await self.run(.duplicate)
        XCTAssertEqual(duplicated.duplicates, Self.clients, duplicated.text)
        XCTAssertEqual(duplicated.missing, 0, duplicated.text)
        let (skipped, _) = try await self.run(.gap)
        XCTAssertEqual(skipped.missing, Self.clients, skipped.text)
        XCTAssertEqual(skipped.duplicates, 0, skipped.text)
    }
}
