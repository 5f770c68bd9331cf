extension GatewayContext {
    /// A request the router answered itself (a 404, a 431, a `HEAD`…), as both HTTP handlers record it:
    /// counted when it refused too many header fields, and logged when the access log is on.
    func routerAnswered(_ log: AccessLogRequest?, _ response: ResponseHead, client: String?, bodyBytes: Int) {
        if response.status == RequestRouter.requestHeaderFieldsTooLarge { self.countTooManyHeaderFields() }
        self.accessLog.writeAnswer(log, response, client: client, bodyBytes: bodyBytes)
    }
}
