/// What one request's access log line is about, kept by its session until the exchange ends: the
/// request's identity, not the request (no header, so nothing of a credential, is kept).
struct AccessLogSubject {
    var request: AccessLogRequest
    var client: String?
    var kind: AccessLogRecord.Kind
    /// A one-feed request's path template and instance path.
    var feed: String?
    var instance: String?
    /// A multi-feed stream's instance paths.
    var feeds: [String]?
    var resumeID: String?

    /// The line of this request ending now.
    func record(
        status: Int,
        end: AccessLogEnd,
        reason: String? = nil,
        gap: Bool = false,
        events: Int = 0,
        bytes: Int = 0
    ) -> AccessLogRecord {
        var record = self.request.record(
            client: self.client,
            kind: self.kind,
            status: status,
            end: end,
            reason: reason
        )
        record.feed = self.feed
        record.instance = self.instance
        record.feeds = self.feeds
        record.resumeID = self.resumeID
        record.gap = gap
        record.events = events
        record.bytes = bytes
        return record
    }
}
