/// How one forward-auth call (or a wait for one) ended: an answer the cache keeps, or none.
enum ForwardAuthOutcome: Sendable, Hashable {
    case answer(ForwardAuthAnswer)
    /// No usable answer: the backend is down, slow, saturated or said something that is neither allow nor
    /// refuse. Never cached, never an allow; the reason is a metric label.
    case unavailable(reason: String)

    var answer: ForwardAuthAnswer? {
        if case .answer(let answer) = self { return answer }
        return nil
    }
}

extension ForwardAuthOutcome {
    /// Every call slot was busy for the whole `queue_timeout`.
    static let saturated = ForwardAuthOutcome.unavailable(reason: "forward_saturated")
    /// No complete answer within `timeout`.
    static let timedOut = ForwardAuthOutcome.unavailable(reason: "forward_timeout")
    /// Connect failure, reset, TLS error: no answer at all.
    static let failed = ForwardAuthOutcome.unavailable(reason: "forward_error")
    /// A status other than 2xx, 401 or 403 (a redirect included: a login page must never count as an allow).
    static let badStatus = ForwardAuthOutcome.unavailable(reason: "forward_bad_status")
}
