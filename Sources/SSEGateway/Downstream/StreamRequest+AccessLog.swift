extension StreamRequest {
    /// What this request's access log line is about; nil when the log is off.
    var accessLogSubject: AccessLogSubject? {
        guard let log = self.log else { return nil }
        return AccessLogSubject(
            request: log,
            client: self.clientAddress,
            kind: self.poll != nil ? .poll : .stream,
            feed: self.target.definition.path.description,
            instance: self.target.key,
            resumeID: self.resumeID
        )
    }
}

extension MultiRequest {
    /// What this request's access log line is about; nil when the log is off.
    var accessLogSubject: AccessLogSubject? {
        guard let log = self.log else { return nil }
        return AccessLogSubject(
            request: log,
            client: self.clientAddress,
            kind: .multi,
            feeds: self.members.map(\.target.key),
            resumeID: self.resume?.encoded
        )
    }
}
