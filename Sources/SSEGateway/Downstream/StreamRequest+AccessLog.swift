extension StreamRequest {
    /// This request's access log line, ending now; nil when the log is off.
    func accessLogRecord(
        status: Int,
        end: AccessLogEnd,
        reason: String? = nil,
        gap: Bool = false,
        events: Int = 0,
        bytes: Int = 0
    ) -> AccessLogRecord? {
        guard let log = self.log else { return nil }
        var record = log.record(
            client: self.clientAddress,
            kind: self.poll != nil ? .poll : .stream,
            status: status,
            end: end,
            reason: reason
        )
        record.feed = self.target.definition.path.description
        record.instance = self.target.key
        record.resumeID = self.resumeID
        record.gap = gap
        record.events = events
        record.bytes = bytes
        return record
    }
}

extension MultiRequest {
    /// This request's access log line, ending now; nil when the log is off.
    func accessLogRecord(
        status: Int,
        end: AccessLogEnd,
        reason: String? = nil,
        gap: Bool = false,
        events: Int = 0,
        bytes: Int = 0
    ) -> AccessLogRecord? {
        guard let log = self.log else { return nil }
        var record = log.record(client: self.clientAddress, kind: .multi, status: status, end: end, reason: reason)
        record.feeds = self.members.map(\.target.key)
        record.resumeID = self.resume?.encoded
        record.gap = gap
        record.events = events
        record.bytes = bytes
        return record
    }
}
