import Foundation
import NIOCore
import NIOHTTP2
import NIOSSL
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// The access log's pieces as plain values: the JSON line (field order, escaping, nulls), the redaction of
/// credentials in the request target, the RFC 3339 timestamps, the bounded queue, and `access_log:` parsing.
final class AccessLogRecordTests: XCTestCase {
    private func record() -> AccessLogRecord {
        var record = AccessLogRecord(
            endedAtMilliseconds: 1_764_490_502_120,
            client: "127.0.0.1",
            method: "GET",
            target: "/rooms/lobby?event=price",
            httpVersion: "HTTP/1.1",
            tls: false,
            kind: .stream,
            status: 200,
            end: .clientClosed
        )
        record.feed = "/rooms/{room}"
        record.instance = "/rooms/lobby"
        record.resumeID = "41"
        record.gap = true
        record.events = 12
        record.bytes = 3456
        record.durationMilliseconds = 5012
        return record
    }

    func testALineHasEveryFieldInAFixedOrder() {
        XCTAssertEqual(
            self.record().jsonLine,
            "{\"time\":\"2025-11-30T08:15:02.120Z\",\"client\":\"127.0.0.1\",\"method\":\"GET\","
                + "\"path\":\"/rooms/lobby?event=price\",\"protocol\":\"HTTP/1.1\",\"tls\":false,\"kind\":\"stream\","
                + "\"feed\":\"/rooms/{room}\",\"instance\":\"/rooms/lobby\",\"status\":200,\"resume_id\":\"41\","
                + "\"gap\":true,\"events\":12,\"bytes\":3456,\"duration_ms\":5012,\"end\":\"client_closed\","
                + "\"reason\":null}\n"
        )
    }

    func testAbsentValuesAreNullAndMultiListsItsFeeds() throws {
        var record = AccessLogRecord(
            endedAtMilliseconds: 0,
            client: nil,
            method: nil,
            target: nil,
            httpVersion: "HTTP/2",
            tls: true,
            kind: .multi,
            status: 431,
            end: .refused
        )
        record.feeds = ["/a", "/rooms/x\"y"]
        record.reason = "header_too_large"
        let line = record.jsonLine
        XCTAssertTrue(line.hasSuffix("}\n"))
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1, "one line")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(object["time"] as? String, "1970-01-01T00:00:00.000Z")
        XCTAssertTrue(object["client"] is NSNull)
        XCTAssertTrue(object["method"] is NSNull)
        XCTAssertTrue(object["path"] is NSNull)
        XCTAssertEqual(object["tls"] as? Bool, true)
        XCTAssertEqual(object["feeds"] as? [String], ["/a", "/rooms/x\"y"])
        XCTAssertEqual(object["reason"] as? String, "header_too_large")
    }

    func testQuotesBackslashesAndControlCharactersAreEscaped() throws {
        var record = self.record()
        record.resumeID = "a\"b\\c\nd\u{1}e"
        record.target = "/rooms/x\"\\\t"
        let line = record.jsonLine
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1, "a newline in a value cannot split the line")
        XCTAssertTrue(line.contains("\"resume_id\":\"a\\\"b\\\\c\\nd\\u0001e\""), line)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(object["resume_id"] as? String, "a\"b\\c\nd\u{1}e")
        XCTAssertEqual(object["path"] as? String, "/rooms/x\"\\\t")
    }

    func testCredentialsInTheQueryAreRedacted() {
        let cases: [(String, String)] = [
            ("/prices?access_token=SECRET", "/prices?access_token=REDACTED"),
            ("/prices?%61ccess_token=SECRET&event=a", "/prices?%61ccess_token=REDACTED&event=a"),
            ("/prices?Token=SECRET&lastEventId=4", "/prices?Token=REDACTED&lastEventId=4"),
            ("/prices?api_key=SECRET&key=SECRET&sig=SECRET", "/prices?api_key=REDACTED&key=REDACTED&sig=REDACTED"),
            ("/prices?event=a&jwt=SECRET&jwt=SECRET", "/prices?event=a&jwt=REDACTED&jwt=REDACTED"),
            ("/prices?access_token", "/prices?access_token"),
            ("/prices", "/prices"),
            ("/multi?feed=/a&feed=/b", "/multi?feed=/a&feed=/b"),
        ]
        for (target, expected) in cases {
            XCTAssertEqual(AccessLogRecord.redactedTarget(target), expected, target)
            var record = self.record()
            record.target = target
            XCTAssertFalse(record.jsonLine.contains("SECRET"), target)
        }
    }

    func testTimestampsAreRFC3339InUTCWithMilliseconds() {
        XCTAssertEqual(AccessLogTime.rfc3339(milliseconds: 0), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(AccessLogTime.rfc3339(milliseconds: 951_782_400_000), "2000-02-29T00:00:00.000Z")
        XCTAssertEqual(AccessLogTime.rfc3339(milliseconds: 1_709_251_199_999), "2024-02-29T23:59:59.999Z")
        XCTAssertEqual(AccessLogTime.rfc3339(milliseconds: -1), "1969-12-31T23:59:59.999Z")
        // Against Foundation's formatter over ten years of random instants.
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        for _ in 0..<2000 {
            let milliseconds = Int64.random(in: 1_500_000_000_000..<1_815_000_000_000)
            let date = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
            XCTAssertEqual(AccessLogTime.rfc3339(milliseconds: milliseconds), formatter.string(from: date))
        }
    }

    func testTheQueueRefusesLinesOverItsCapacity() {
        var queue = AccessLogQueue(capacity: 3)
        XCTAssertTrue(queue.offer("a"))
        XCTAssertTrue(queue.offer("b"))
        XCTAssertTrue(queue.offer("c"))
        XCTAssertFalse(queue.offer("d"))
        XCTAssertEqual(queue.takeAll(), ["a", "b", "c"])
        XCTAssertEqual(queue.takeAll(), [])
        XCTAssertTrue(queue.offer("e"))
        XCTAssertEqual(queue.takeAll(), ["e"])
    }

    func testEndReasonsFromTheFanOut() {
        XCTAssertEqual(AccessLogEnd(EvictionReason.maxQueue), .evictedMaxQueue)
        XCTAssertEqual(AccessLogEnd(EvictionReason.maxLag), .evictedMaxLag)
        XCTAssertEqual(CloseReason.allCases.map { AccessLogEnd($0).rawValue }, CloseReason.allCases.map(\.rawValue))
    }

    func testAClientGoingAwayIsNotAnError() {
        struct Other: Error {}
        XCTAssertTrue(AccessLogRecord.isPeerClose(NIOHTTP2Errors.streamClosed(streamID: 1, errorCode: .cancel)))
        XCTAssertTrue(AccessLogRecord.isPeerClose(IOError(errnoCode: ECONNRESET, reason: "read")))
        XCTAssertTrue(AccessLogRecord.isPeerClose(IOError(errnoCode: EPIPE, reason: "write")))
        XCTAssertTrue(AccessLogRecord.isPeerClose(ChannelError.eof))
        XCTAssertTrue(AccessLogRecord.isPeerClose(NIOSSLError.uncleanShutdown))
        XCTAssertFalse(AccessLogRecord.isPeerClose(IOError(errnoCode: EIO, reason: "write")))
        XCTAssertFalse(AccessLogRecord.isPeerClose(Other()))
        XCTAssertEqual(AccessLogRecord.errorReason(IOError(errnoCode: EIO, reason: "write")).count <= 200, true)
    }

    // MARK: access_log:

    func testAccessLogIsOffByDefaultAndTakesStdoutOrAFile() throws {
        let directory = try TestScratch.directory("access-log-config").path
        XCTAssertNil(try ConfigFixtures.parse("").accessLog)
        XCTAssertNil(try ConfigFixtures.parse("access_log: off\n").accessLog)
        XCTAssertNil(try ConfigFixtures.parse("access_log:\n").accessLog)
        XCTAssertEqual(try ConfigFixtures.parse("access_log: stdout\n").accessLog, .stdout)
        XCTAssertEqual(
            try ConfigFixtures.parse("access_log: \(directory)/access.log\n").accessLog,
            .file("\(directory)/access.log")
        )
        XCTAssertEqual(
            try ConfigFixtures.parse("access_log: logs/../access.log\n", baseDirectory: directory).accessLog,
            .file("\(directory)/access.log"),
            "relative to the config's folder"
        )
    }

    func testAccessLogErrorsAtTheirLineAndColumn() throws {
        let directory = try TestScratch.directory("access-log-errors").path
        ConfigFixtures.assertSingleError(
            "log_level: info\naccess_log: /no/such/folder/access.log\n",
            line: 2,
            column: 13,
            "the folder of access log '/no/such/folder/access.log' does not exist"
        )
        ConfigFixtures.assertSingleError(
            "access_log: \(directory)\n",
            line: 1,
            column: 13,
            "is a directory; name a file in it"
        )
        ConfigFixtures.assertSingleError("access_log: ''\n", line: 1, column: 13, "got an empty string")
        ConfigFixtures.assertSingleError(
            "listen:\n  - address: 127.0.0.1:8080\n    access_log: stdout\n",
            line: 3,
            column: 5,
            "'access_log' is set once, at the top level"
        )
    }
}
