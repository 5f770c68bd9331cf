import NIOCore
import Yams

extension ConfigLoader {
    /// Applies one settings mapping — `defaults:` or a `feeds:` entry — over `settings`, key by key.
    ///
    /// The same function serves both so that a key means the same thing in both places and every key
    /// `defaults:` accepts can be overridden per feed. Nested mappings (`replay`, `client`, `upstream`,
    /// `backoff`, `cors`, `upstream.tls`) override key by key too; only keys written here change.
    /// Values are checked where they are written, so a bad value in `defaults:` is reported once, not per feed.
    static func applySettings(_ mapping: ConfigMapping, to settings: inout FeedSettings) {
        if let value = mapping.value("retry"), let retry = value.duration() {
            settings.retry = retry
        }
        if let value = mapping.value("retry_jitter"), let jitter = value.percentage() {
            settings.retryJitter = jitter
        }
        // Zero would mean a comment line on every tick of the timer.
        if let value = mapping.value("keepalive"), let keepalive = value.duration(positive: true) {
            settings.keepalive = keepalive
        }
        if let value = mapping.value("padding"), let padding = value.bool() {
            settings.padding = padding
        }
        if let value = mapping.value("compression"), let compression = value.bool() {
            settings.compression = compression
        }
        if let replay = mapping.child("replay") {
            self.applyReplay(replay, to: &settings.replay)
        }
        if let client = mapping.child("client") {
            self.applyClientLimits(client, to: &settings.client)
        }
        if let upstream = mapping.child("upstream") {
            self.applyUpstream(upstream, to: &settings.upstream)
        }
        if let cors = mapping.child("cors") {
            self.applyCORS(cors, to: &settings.cors)
        }
        if let auth = mapping.value("auth") {
            self.applyAuth(auth, to: &settings.auth)
        }
        if let value = mapping.value("delivery"), let word = value.choice(["stream", "poll"]) {
            settings.delivery = DeliveryMode(rawValue: word) ?? .stream
        }
        if let poll = mapping.child("poll") {
            self.applyPoll(poll, to: &settings.poll)
        }
    }

    /// `poll:` timers; `max_waiting` is read by the top level from `defaults.poll` (it is gateway-wide).
    private static func applyPoll(_ mapping: ConfigMapping, to poll: inout PollSettings) {
        if let value = mapping.value("retry"), let retry = value.duration() {
            poll.retry = retry
        }
        // Zero would answer every poll at once: a busy loop of empty responses.
        if let value = mapping.value("timeout"), let timeout = value.duration(positive: true) {
            poll.timeout = timeout
        }
        if let value = mapping.value("gather"), let gather = value.duration() {
            poll.gather = gather
        }
        if mapping.path != "defaults.poll" {
            mapping.hint("max_waiting", "'max_waiting' is gateway-wide: set it in defaults.poll")
        }
    }

    private static func applyReplay(_ mapping: ConfigMapping, to replay: inout ReplayConfig) {
        if let value = mapping.value("max_events"), let count = value.integer(atLeast: 1) {
            replay.maxEvents = count
        }
        if let value = mapping.value("max_bytes"), let bytes = value.size(atLeast: 1) {
            replay.maxBytes = bytes
        }
        // Zero would expire every event as it arrives: replay silently off. Say so instead.
        if let value = mapping.value("max_age"), let age = value.duration(positive: true) {
            replay.maxAge = age
        }
        if let value = mapping.value("gap_event"), let gapEvent = value.bool() {
            replay.gapEvent = gapEvent
        }
    }

    private static func applyClientLimits(_ mapping: ConfigMapping, to client: inout ClientLimitsConfig) {
        // Below 1 KiB nearly every event would evict its client.
        if let value = mapping.value("max_queue"), let bytes = value.size(atLeast: 1024) {
            client.maxQueue = bytes
        }
        if let value = mapping.value("max_lag"), let lag = value.duration(positive: true) {
            client.maxLag = lag
        }
        if mapping.path != "defaults.client" {
            mapping.hint(
                "socket_send_buffer",
                "'socket_send_buffer' is set when a connection is accepted, before its feed is known: set it in defaults.client"
            )
        }
    }

    private static func applyUpstream(_ mapping: ConfigMapping, to upstream: inout UpstreamSettings) {
        if let value = mapping.value("connect_timeout"), let timeout = value.duration(positive: true) {
            upstream.connectTimeout = timeout
        }
        if let value = mapping.value("idle_timeout"), let timeout = value.duration(positive: true) {
            upstream.idleTimeout = timeout
        }
        if let backoff = mapping.child("backoff") {
            self.applyBackoff(backoff, to: &upstream)
        }
        // Below 1 KiB even an event with an id and a short JSON body would be dropped.
        if let value = mapping.value("max_event_size"), let bytes = value.size(atLeast: 1024) {
            upstream.maxEventSize = bytes
        }
        if let headers = mapping.child("headers") {
            self.mergeHeaders(headers, into: &upstream.headers)
        }
        if let value = mapping.value("tls") {
            if value.isNull {
                // Lets one feed drop a client certificate or CA bundle that `defaults:` set.
                upstream.tls = nil
            } else if let tls = mapping.child("tls") {
                self.applyUpstreamTLS(tls, to: &upstream.tls)
            }
        }
    }

    /// `initial ≤ max` is checked here, on the values in force after this mapping, and only when this mapping
    /// writes `backoff`: a feed that sets only `initial: 1m` under a default `max: 30s` is the one to blame.
    private static func applyBackoff(_ mapping: ConfigMapping, to upstream: inout UpstreamSettings) {
        var isValid = true
        let initialValue = mapping.value("initial")
        if let initialValue {
            if let initial = initialValue.duration(positive: true) {
                upstream.backoffInitial = initial
            } else {
                isValid = false
            }
        }
        let maxValue = mapping.value("max")
        if let maxValue {
            if let max = maxValue.duration(positive: true) {
                upstream.backoffMax = max
            } else {
                isValid = false
            }
        }
        if let value = mapping.value("reset_after"), let resetAfter = value.duration(positive: true) {
            upstream.backoffResetAfter = resetAfter
        }
        if isValid, upstream.backoffInitial > upstream.backoffMax, let blamed = maxValue ?? initialValue {
            mapping.context.report(
                "\(mapping.path): initial (\(self.format(upstream.backoffInitial))) must not be greater than "
                    + "max (\(self.format(upstream.backoffMax)))",
                at: blamed.mark
            )
        }
    }

    /// Merges a `headers:` mapping over the inherited headers: a name already there (compared
    /// case-insensitively, as HTTP does) takes the new value in place; new names are appended in written order.
    private static func mergeHeaders(_ mapping: ConfigMapping, into headers: inout [HeaderField]) {
        var written: [String: Mark?] = [:]
        for (name, keyMark, value) in mapping.allEntries() {
            guard !name.isEmpty, name.utf8.allSatisfy(self.isTokenByte) else {
                mapping.context.report("\(mapping.path): '\(name)' is not a valid header name", at: keyMark)
                continue
            }
            let lowercased = name.lowercased()
            if let firstMark = written[lowercased] {
                let line = firstMark.map { " (line \($0.line))" } ?? ""
                mapping.context.report(
                    "\(mapping.path): header '\(name)' is already set\(line); header names ignore case",
                    at: keyMark
                )
                continue
            }
            written[lowercased] = keyMark
            guard let text = value.text(expected: "a header value") else {
                continue
            }
            // A line break would let a value inject further headers into the upstream request.
            // Scalars, not Characters: "\r\n" is one Character equal to neither "\r" nor "\n".
            guard !text.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
                value.fail("a header value must not contain line breaks")
                continue
            }
            let field = HeaderField(name: name, value: text)
            if let index = headers.firstIndex(where: { $0.name.lowercased() == lowercased }) {
                headers[index] = field
            } else {
                headers.append(field)
            }
        }
    }

    private static func applyUpstreamTLS(_ mapping: ConfigMapping, to tls: inout UpstreamTLSConfig?) {
        var result = tls ?? UpstreamTLSConfig()
        var isValid = true
        /// Reads one file key; `null` drops an inherited file.
        func file(_ key: String, _ store: (inout UpstreamTLSConfig, String?) -> Void) {
            guard let value = mapping.value(key) else {
                return
            }
            if value.isNull {
                store(&result, nil)
            } else if let path = value.readableFile() {
                store(&result, path)
            } else {
                isValid = false
            }
        }
        file("ca") { $0.ca = $1 }
        file("certificate") { $0.certificate = $1 }
        file("private_key") { $0.privateKey = $1 }
        if let value = mapping.value("verify"), let verify = value.bool() {
            result.verify = verify
        }
        let writesClientIdentity = mapping.value("certificate") != nil || mapping.value("private_key") != nil
        if isValid, writesClientIdentity, (result.certificate == nil) != (result.privateKey == nil) {
            mapping.context.report(
                "\(mapping.path): certificate and private_key must be set together "
                    + "(a client certificate needs its key)",
                at: mapping.mark
            )
        }
        tls = result
    }

    private static func applyCORS(_ mapping: ConfigMapping, to cors: inout CORSConfig) {
        let originsValue = mapping.value("allow_origins")
        if let originsValue, let items = originsValue.list() {
            var origins: [OriginPattern] = []
            var isValid = true
            for item in items {
                guard let text = item.nonEmptyString("an origin") else {
                    isValid = false
                    continue
                }
                do {
                    origins.append(try OriginPattern(parsing: text))
                } catch {
                    item.fail(error.message)
                    isValid = false
                }
            }
            if isValid {
                cors.allowOrigins = origins
            }
        }
        let credentialsValue = mapping.value("allow_credentials")
        if let credentialsValue, let allow = credentialsValue.bool() {
            cors.allowCredentials = allow
        }
        if cors.allowCredentials, cors.allowsAnyOrigin, let blamed = credentialsValue ?? originsValue {
            blamed.fail(
                "allow_credentials cannot be true with allow_origins '*' (browsers refuse credentials for a "
                    + "wildcard origin); list the origins instead"
            )
        }
    }

    // MARK: - Helpers

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// A duration the way the config writes it (`250ms`, `30s`, `1m`), for messages.
    static func format(_ amount: TimeAmount) -> String {
        let nanoseconds = amount.nanoseconds
        let units: [(String, Int64)] = [
            ("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000),
        ]
        for (unit, size) in units where nanoseconds != 0 && nanoseconds % size == 0 {
            return "\(nanoseconds / size)\(unit)"
        }
        return nanoseconds == 0 ? "0" : "\(nanoseconds)ns"
    }
}
