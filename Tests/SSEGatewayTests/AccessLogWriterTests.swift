import Foundation
import Logging
import NIOCore
import NIOHTTP1
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// The access log's writer: off it collects nothing; on, a destination that stops taking lines costs
/// dropped lines (counted), never a blocked caller; `stop` writes what is queued.
final class AccessLogWriterTests: XCTestCase {
    private func record(_ index: Int) -> AccessLogRecord {
        AccessLogRecord(
            endedAtMilliseconds: 0,
            client: "127.0.0.1",
            method: "GET",
            target: "/prices?n=\(index)&" + String(repeating: "x", count: 200),
            httpVersion: "HTTP/1.1",
            tls: false,
            kind: .stream,
            status: 200,
            end: .clientClosed
        )
    }

    func testOffItCollectsNothing() {
        let log = AccessLog(logger: Logger(label: "test"))
        XCTAssertFalse(log.isEnabled)
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/prices")
        XCTAssertNil(AccessLogRequest.make(head, tls: false, log: log), "no request collects a record")
        log.write(self.record(1))
        XCTAssertEqual(log.droppedLines, 0, "nothing queued, nothing dropped")
    }

    func testAStuckDestinationDropsLinesAndNeverBlocksTheCaller() async throws {
        let directory = try TestScratch.directory("access-log-fifo")
        let fifo = directory.appendingPathComponent("access.fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        // A reader that never reads: the writer thread blocks once the pipe's 64 KiB are full.
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        XCTAssertGreaterThanOrEqual(reader, 0)
        let log = AccessLog(capacity: 100, logger: Logger(label: "test"))
        try log.apply(.file(fifo))

        let started = NIODeadline.now()
        for index in 0..<5000 { log.write(self.record(index)) }
        let took = NIODeadline.now() - started
        // A caller that blocked would stay blocked (nobody reads the FIFO yet): any bound shows it does not;
        // a generous one keeps a loaded machine from failing the test.
        XCTAssertLessThan(took, .seconds(10), "5000 lines queue or drop at once, whatever the destination does")
        // 5000 lines of ~480 bytes: the pipe takes ~136 of them and the queue 100; the writer holds a batch.
        XCTAssertGreaterThan(log.droppedLines, 1000)

        // Reading unblocks the writer; `stop` then writes what is still queued and ends it.
        let draining = Task.detached {
            var buffer = [UInt8](repeating: 0, count: 65536)
            var idle = 0
            while idle < 40 {
                let count = read(reader, &buffer, buffer.count)
                if count > 0 {
                    idle = 0
                } else {
                    idle += 1
                    usleep(5000)
                }
            }
        }
        await log.stop()
        await draining.value
        close(reader)
        let dropped = log.droppedLines
        log.write(self.record(0))
        XCTAssertEqual(log.droppedLines, dropped, "stopped: off, nothing more collected")
    }

    func testTheDroppedCounterIsAMetric() async throws {
        let harness = try await Harness.start { origin in [try Harness.feed("/prices", upstream: "\(origin)/prices")] }
        self.addTeardownBlock { await harness.stop() }
        let metrics = try await harness.gateway.metrics.render(on: harness.group.next()).get()
        XCTAssertTrue(metrics.contains("ssegate_access_log_dropped_total 0"), metrics)
    }
}
