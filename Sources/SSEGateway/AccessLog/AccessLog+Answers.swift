/// The lines both HTTP handlers write for requests that never became a stream.
extension AccessLog {
    /// A request the router answered itself (a 404, a 400, a `HEAD`…); nothing when `log` is nil (off).
    func writeAnswer(_ log: AccessLogRequest?, _ response: ResponseHead, client: String?, bodyBytes: Int) {
        guard let log else { return }
        let status = Int(response.status.code)
        var record = log.record(
            client: client,
            kind: .request,
            status: status,
            end: .forAnswer(status: status),
            reason: status < 400 ? nil : AccessLogRecord.routerReason(status: status)
        )
        record.bytes = bodyBytes
        self.write(record)
    }

    /// A stream, poll or multi-feed stream refused at admission by the limit named `reason` (a 503).
    func writeRefusal(_ subject: AccessLogSubject?, _ response: ResponseHead, body: String, reason: String) {
        guard let subject else { return }
        self.write(
            subject.record(status: Int(response.status.code), end: .refused, reason: reason, bytes: body.utf8.count)
        )
    }
}
