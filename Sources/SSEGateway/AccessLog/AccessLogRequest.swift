import NIOCore
import NIOHTTP1

import struct Foundation.Date

/// What the access log keeps of a request from its head until its exchange ends. The connection handler
/// makes one only when the log is on (`make`), so with the log off a request carries nil and no session
/// collects anything.
struct AccessLogRequest {
    var method: String
    /// The request target as sent; redacted when written (`AccessLogRecord.redactedTarget`).
    var target: String
    var httpVersion: String
    var tls: Bool
    var startedAt: NIODeadline

    /// A request's record-to-be, or nil when the access log is off.
    static func make(_ head: HTTPRequestHead, tls: Bool, log: AccessLog) -> AccessLogRequest? {
        guard log.isEnabled else { return nil }
        return AccessLogRequest(
            method: head.method.rawValue,
            target: head.uri,
            httpVersion: Self.version(head.version),
            tls: tls,
            startedAt: .now()
        )
    }

    static func version(_ version: HTTPVersion) -> String {
        switch (version.major, version.minor) {
        case (1, 1): return "HTTP/1.1"
        case (1, 0): return "HTTP/1.0"
        case (2, _): return "HTTP/2"
        default: return "HTTP/\(version.major).\(version.minor)"
        }
    }

    /// The record of this request ending now.
    func record(
        client: String?,
        kind: AccessLogRecord.Kind,
        status: Int,
        end: AccessLogEnd,
        reason: String? = nil
    ) -> AccessLogRecord {
        var record = AccessLogRecord(
            endedAtMilliseconds: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)),
            client: client,
            method: self.method,
            target: self.target,
            httpVersion: self.httpVersion,
            tls: self.tls,
            kind: kind,
            status: status,
            end: end
        )
        record.durationMilliseconds = (NIODeadline.now() - self.startedAt).nanoseconds / 1_000_000
        record.reason = reason
        return record
    }
}

extension AccessLogEnd {
    /// How a complete answer the router or a session gave on its own ends: a success is `answered`, anything
    /// else `refused`.
    static func forAnswer(status: Int) -> AccessLogEnd {
        status < 400 ? .answered : .refused
    }
}

extension AccessLogRecord {
    /// The `reason` of a refusal the router answered itself, from its status.
    static func routerReason(status: Int) -> String? {
        switch status {
        case 400: return "bad_request"
        case 404: return "not_found"
        case 405: return "method_not_allowed"
        case 431: return "header_too_large"
        case 501: return "not_implemented"
        default: return nil
        }
    }
}

extension AccessLogRecord {
    /// The line of a request whose head could not be parsed (400, 431): no method, no path.
    static func unparsed(status: Int, client: String?, httpVersion: String, tls: Bool) -> AccessLogRecord {
        var record = AccessLogRecord(
            endedAtMilliseconds: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)),
            client: client,
            method: nil,
            target: nil,
            httpVersion: httpVersion,
            tls: tls,
            kind: .request,
            status: status,
            end: .refused
        )
        record.reason = Self.routerReason(status: status)
        return record
    }
}
