import Foundation
import NIOCore
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Issue 14, item 4: `defaults.client.socket_send_buffer` bounds what the kernel holds for a client that
/// never reads. Without it Linux autotunes the send buffer of a loopback socket to megabytes, outside
/// `max_queue`.
final class SocketSendBufferTests: XCTestCase {
    /// Bytes in the send queue (`tx_queue`: written, not yet acknowledged) of every established TCP socket
    /// whose local address is 127.0.0.1:`port` (the gateway's side of its clients), from /proc/net/tcp.
    /// The address counts too: another test's socket bound to 127.0.0.2 may have the same port number.
    private static func sendQueues(localPort port: Int) throws -> [Int] {
        var queues: [Int] = []
        for file in ["/proc/net/tcp"] {
            // Read to the end: /proc files report size 0, and a one-read helper stops after the first page.
            guard let handle = FileHandle(forReadingAtPath: file) else { continue }
            let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
            try handle.close()
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                // sl local_address rem_address st tx_queue:rx_queue ...
                let local = fields.count > 1 ? fields[1].split(separator: ":") : []
                guard fields.count > 4, fields[3] == "01", local.count == 2, local[0] == "0100007F",
                    Int(local[1], radix: 16) == port,
                    let tx = fields[4].split(separator: ":").first, let bytes = Int(tx, radix: 16)
                else { continue }
                queues.append(bytes)
            }
        }
        return queues
    }

    func testNeverReadingClientsHoldAtMostTheSendBufferInTheKernel() async throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/proc/net/tcp"), "needs Linux's /proc/net/tcp")
        let harness = try await Harness.start(
            configure: { $0.limits.socketSendBuffer = 16 * 1024 },
            feeds: { origin in
                [
                    try Harness.feed("/prices", upstream: "\(origin)/prices") {
                        // Large enough that no one is evicted: what the kernel holds is measured at rest.
                        $0.settings.client.maxQueue = 64 * 1024 * 1024
                        $0.settings.client.maxLag = .seconds(60)
                    }
                ]
            }
        )
        self.addTeardownBlock { await harness.stop() }
        try await eventually("upstream connected") { harness.origin.openConnections == 1 }
        var stalled: [TestSSEClient] = []
        for _ in 0..<20 { stalled.append(try await harness.client("/prices", receiveBuffer: 4096, reading: false)) }
        var readers: [TestSSEClient] = []
        for _ in 0..<50 { readers.append(try await harness.client("/prices", recordBody: false)) }
        for reader in readers { _ = try await reader.waitForHead() }
        try await eventually("70 joined") { try await harness.metrics().connectedClients == 70 }

        // 200 events of 8 KiB (1.6 MiB), paced so that the readers, which share the two cores, keep up.
        let payload = String(repeating: "p", count: 8 * 1024)
        let total = 200
        for index in 1...total {
            harness.origin.publish(data: "\(index) \(payload)")
            if index % 10 == 0 { try await Task.sleep(nanoseconds: 5_000_000) }
        }
        for reader in readers {
            let events = try await reader.waitForEvents(total, timeout: .seconds(20))
            XCTAssertEqual(events.map(\.id), (1...total).map { String($0) })
        }
        // The stalled clients' bytes wait in the gateway's queue (counted by max_queue), not in the kernel.
        try await eventually("the stalled clients' queues hold the rest") {
            try await harness.metrics().queuedBytes > 20 * 1024 * 1024
        }
        let queues = try Self.sendQueues(localPort: harness.port)
        XCTAssertEqual(queues.count, 70, "\(queues)")
        // Linux doubles SO_SNDBUF (16 KiB → 32 KiB of socket memory, data plus bookkeeping).
        XCTAssertLessThanOrEqual(queues.max() ?? 0, 32 * 1024, "\(queues.sorted())")
        let metrics = try await harness.gateway.metrics.render(on: harness.group.next()).get()
        XCTAssertTrue(metrics.contains("ssegate_socket_send_buffer_bytes 32768"), metrics)
        let connected = try await harness.metrics().connectedClients
        XCTAssertEqual(connected, 70, "no one was evicted")
        for client in stalled + readers { await client.close() }
    }
}
