import Foundation
import Logging
import NIOCore
import NIOPosix
import SSEOrigin
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Headless Chromium's own EventSource on `/multi?feed=/a&feed=/b`: it keeps the composite id and, after
/// the gateway restarts (a new `GatewayServer` on the same port, nothing buffered), resumes both feeds
/// from that one `Last-Event-ID` with no gap and no duplicate.
final class BrowserMultiFeedTests: XCTestCase {
    func testChromiumResumesBothFeedsAfterTheGatewayRestarts() async throws {
        _ = try ExternalTool.chromium.require()
        let groupB = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let originB = OriginServer(options: OriginServer.Options(), group: groupB)
        try await originB.start()
        let portB = originB.port
        func feeds(_ origin: String) throws -> [FeedConfig] {
            try [("/a", "\(origin)/a"), ("/b", "http://127.0.0.1:\(portB)/b")].map { path, url in
                try Harness.feed(path, upstream: url, connect: .onDemand) {
                    $0.settings.retry = .milliseconds(200)
                    $0.settings.cors.allowOrigins = ["*"]
                }
            }
        }
        let harness = try await Harness.start(feeds: feeds)
        self.addTeardownBlock {
            await harness.stop()
            try? await originB.stop()
            try? await groupB.shutdownGracefully()
        }
        let port = harness.port
        let page = """
            <!doctype html><meta charset="utf-8"><title>ssegate multi</title><script>
            const got = [];
            const post = (kind, value) => fetch('/report', {method: 'POST', body: JSON.stringify({kind, value})});
            const es = new EventSource('http://127.0.0.1:\(port)/multi?feed=/a&feed=/b');
            es.onopen = () => post('open', got.length);
            const record = (e) => {
              got.push({type: e.type, id: e.lastEventId, data: e.data});
              if (got.length === 7) { es.close(); post('events', got); }
            };
            es.addEventListener('price', record);
            es.addEventListener('trade', record);
            </script>
            """
        let browser = BrowserHarness(page: page, group: harness.clientGroup)
        try await browser.start()
        self.addTeardownBlock { await browser.stop() }
        try await eventually("the browser connected", timeout: .seconds(30)) { browser.received.count == 1 }
        try await eventually("both upstreams connected") {
            harness.origin.openConnections == 1 && originB.openConnections == 1
        }

        harness.origin.publish(data: "a1", type: "price")
        harness.origin.publish(data: "a2", type: "price")
        originB.publish(data: "b1", type: "trade")
        try await eventually("gateway has a2 and b1") {
            let feeds = try await harness.metrics().feeds
            return feeds.first { $0.path == "/a" }?.lastEventID == "2"
                && feeds.first { $0.path == "/b" }?.lastEventID == "1"
        }
        try await Task.sleep(for: .milliseconds(200))  // let the browser take them in

        // The gateway goes away; events happen meanwhile; a new gateway, nothing buffered, takes the port.
        try await harness.gateway.shutdown()
        harness.origin.publish(data: "a3", type: "price")
        originB.publish(data: "b2", type: "trade")
        var config = GatewayConfig()
        config.listen = [ListenerConfig(address: HostPort(host: "127.0.0.1", port: port))]
        config.admin = nil
        config.feeds = try feeds(harness.originURL)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = GatewayServer(config: config, group: harness.group, logger: logger)
        try await server.start()
        self.addTeardownBlock { try? await server.shutdown() }
        try await eventually("the browser reconnected", timeout: .seconds(10)) { browser.received.count >= 2 }
        try await eventually("both upstreams resumed") {
            harness.origin.openConnections == 1 && originB.openConnections == 1
        }
        harness.origin.publish(data: "a4", type: "price")
        originB.publish(data: "b3", type: "trade")
        try await eventually("the browser reported its events", timeout: .seconds(10)) {
            browser.received.contains { $0.contains("\"kind\":\"events\"") }
        }
        let report = try XCTUnwrap(browser.received.first { $0.contains("\"kind\":\"events\"") })
        struct Report: Decodable {
            struct Event: Decodable {
                var type: String
                var id: String
                var data: String
            }
            var value: [Event]
        }
        let events = try JSONDecoder().decode(Report.self, from: Data(report.utf8)).value
        XCTAssertEqual(events.filter { $0.type == "price" }.map(\.data), ["a1", "a2", "a3", "a4"], report)
        XCTAssertEqual(events.filter { $0.type == "trade" }.map(\.data), ["b1", "b2", "b3"], report)
        XCTAssertEqual(events.last.map { CompositeID.decode($0.id, feeds: 2)?.ids.sorted() }, ["3", "4"])
    }
}
