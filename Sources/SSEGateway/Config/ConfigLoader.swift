import Foundation
import NIOCore
import Yams

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the gateway's YAML config file into a validated `GatewayConfig` (SPEC §2).
///
/// The loader walks `Yams.compose`'s node tree rather than decoding with `Codable`, because only the nodes
/// know their line and column, and every error must point at the spot to fix. It does not stop at the first
/// problem: each bad value is reported and skipped, and all errors are thrown together at the end.
///
/// Decisions worth knowing (see also `ConfigValue` and `ConfigValueParser`):
/// - A null value (`key:`, `key: ~`, `key: null`) for a section (`limits`, `defaults`, `replay`, …, `listen`,
///   `feeds`) means the section was not written. For `admin`, `null` or `false` disables the admin listener;
///   for a listener's `tls` it means cleartext; for `upstream.tls` (and its `ca`/`certificate`/`private_key`)
///   it drops what `defaults:` set.
/// - `${NAME}` is expanded in every scalar value (not in keys); `$${` is a literal `${`.
/// - Anchors and aliases work (an error inside aliased content points at the anchor); merge keys `<<` do not.
public enum ConfigLoader {
    /// Log levels accepted by `log_level`, as swift-log names them.
    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// Reads and validates a file. `file` is printed as given in errors.
    /// Relative paths inside (TLS files) resolve against the file's folder; `tlsCheck` says whether they
    /// can be used (the gateway passes `.contexts`, through `load(file:environment:)`).
    public static func load(
        file: String,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        tlsCheck: TLSFileCheck
    ) throws(ConfigLoadError) -> GatewayConfig {
        let yaml: String
        do {
            yaml = try self.readFile(file)
        } catch {
            throw ConfigLoadError(errors: [
                ConfigError(file: file, line: 1, column: 1, message: "cannot read file: \(error.message)")
            ])
        }
        return try self.parse(
            yaml: yaml,
            file: file,
            baseDirectory: self.directory(of: file),
            environment: environment,
            tlsCheck: tlsCheck
        )
    }

    /// Parses and validates config text. `file` is only used in error messages;
    /// `baseDirectory` is where relative TLS paths resolve, `tlsCheck` says whether those files can be used.
    public static func parse(
        yaml: String,
        file: String,
        baseDirectory: String,
        environment: [String: String],
        tlsCheck: TLSFileCheck
    ) throws(ConfigLoadError) -> GatewayConfig {
        // A UTF-8 byte order mark (some Windows editors write one) marks the encoding and is not content.
        // It is invisible in an editor, so dropping it before parsing keeps every line and column as shown there.
        let yaml = yaml.unicodeScalars.first == "\u{FEFF}" ? String(yaml.unicodeScalars.dropFirst()) : yaml
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            // Yams stops at the first syntax error, so there is exactly one to report.
            throw ConfigLoadError(errors: [ConfigError(yamlError: error, file: file, yaml: yaml)])
        }
        let context = ConfigContext(
            file: file,
            baseDirectory: baseDirectory,
            environment: environment,
            tlsCheck: tlsCheck
        )
        var config = GatewayConfig()
        // An empty file (or one of only comments) is a valid config of all defaults.
        if let root, !ConfigValue.isNull(root) {
            if case .mapping(let mapping) = root {
                self.readTopLevel(ConfigMapping(mapping, path: "", context: context), into: &config)
            } else {
                context.report(
                    "the config must be a mapping of keys such as listen, defaults and feeds, got "
                        + ConfigValue.kind(of: root),
                    at: root.mark
                )
            }
        }
        let errors = context.finish()
        guard errors.isEmpty else {
            throw ConfigLoadError(errors: errors)
        }
        return config
    }

    // MARK: - Top level

    /// Where a listener or the admin endpoint binds, kept to report a second use of the same address.
    private struct Binding {
        var address: HostPort
        var owner: String
        var mark: Mark?
    }

    private static func readTopLevel(_ top: ConfigMapping, into config: inout GatewayConfig) {
        // Feed settings written at the top level are a common slip; point to where they belong.
        for key in [
            "retry", "retry_jitter", "keepalive", "padding", "compression", "replay", "client", "upstream", "cors",
            "delivery", "poll",
        ] {
            top.hint(key, "'\(key)' belongs under 'defaults:' or a feed")
        }
        if let value = top.value("log_level"), let level = value.choice(self.logLevels) {
            config.logLevel = level
        }
        if let value = top.value("access_log") {
            config.accessLog = self.readAccessLog(value)
        }

        var bindings: [Binding] = []
        if let value = top.value("listen"), !value.isNull, let items = value.list() {
            if items.isEmpty {
                value.fail("needs at least one address (leave 'listen' out for the default 0.0.0.0:8080)")
            } else {
                let listeners = items.map { self.readListener($0, bindings: &bindings) }
                if listeners.allSatisfy({ $0 != nil }) {
                    config.listen = listeners.compactMap { $0 }
                }
            }
        } else {
            bindings += config.listen.enumerated().map { Binding(address: $1.address, owner: "listen[\($0)]") }
        }

        if let value = top.value("admin") {
            config.admin = self.readAdmin(value, bindings: &bindings)
        } else if let admin = config.admin {
            bindings.append(Binding(address: admin.address, owner: "admin"))
        }
        self.checkBindings(bindings, context: top.context)

        if let value = top.value("shutdown_timeout"), let timeout = value.duration() {
            config.shutdownTimeout = timeout
        }
        if let value = top.value("reload_on_change"), let flag = value.bool() {
            config.reloadOnChange = flag
        }
        if let value = top.value("reload_check_interval"), let interval = value.duration(positive: true) {
            config.reloadCheckInterval = interval
        }
        if let limits = top.child("limits") {
            self.applyLimits(limits, to: &config.limits)
        }

        var defaults = FeedSettings()
        if let mapping = top.child("defaults") {
            // Feed-only keys in `defaults:` get a pointed explanation instead of "unknown key".
            for key in ["name", "path", "connect", "linger", "ids", "max_feeds"] {
                mapping.hint(key, "'\(key)' can only be set on a feed")
            }
            mapping.child("upstream")?.hint("url", "'url' can only be set in a feed's upstream")
            if let value = mapping.child("poll")?.value("max_waiting"), let count = value.integer(atLeast: 1) {
                config.limits.maxPollWaiting = count
            }
            self.applySettings(mapping, to: &defaults)
        }

        if let value = top.value("feeds"), !value.isNull, let items = value.list() {
            var feeds: [FeedConfig] = []
            var seen = SeenFeeds()
            for item in items {
                guard let (feed, identity) = self.readFeed(item, defaults: defaults) else {
                    continue
                }
                if self.checkUnique(identity, against: &seen, context: top.context) {
                    feeds.append(feed)
                }
            }
            config.feeds = feeds
        }
        if let value = top.value("trusted_proxies"), !value.isNull, let items = value.list() {
            self.readTrustedProxies(items, into: &config.limits.trustedProxies)
        }
        if let multi = top.child("multi") {
            self.readMulti(multi, feeds: config.feeds, into: &config.limits.multi)
        }
    }

    /// `trusted_proxies: [10.0.0.0/8, "fd00::/8"]`: each a CIDR or one address; every bad one is reported.
    private static func readTrustedProxies(_ items: [ConfigValue], into trusted: inout TrustedProxies) {
        var cidrs: [String] = []
        for item in items {
            guard let text = item.nonEmptyString("a CIDR such as 10.0.0.0/8 or fd00::/8") else { continue }
            if IPNetwork(text) == nil {
                item.fail("'\(text)' is not an IPv4 or IPv6 address or CIDR (e.g. 10.0.0.0/8, 192.0.2.7, fd00::/8)")
            } else {
                cidrs.append(text)
            }
        }
        if cidrs.count == items.count, let parsed = TrustedProxies(cidrs) {
            trusted = parsed
        }
    }

    /// `multi: { path, max_feeds }`; the path must be no feed's (a feed there could never be reached).
    private static func readMulti(_ mapping: ConfigMapping, feeds: [FeedConfig], into multi: inout MultiConfig) {
        if let value = mapping.value("path"), let path = value.nonEmptyString() {
            if !path.hasPrefix("/") || path.contains("?") || path.contains("{") {
                value.fail("must be a plain path starting with '/', e.g. /multi")
            } else if let feed = feeds.first(where: { $0.path.match(Substring(path)) != nil }) {
                value.fail("'\(path)' is the path of feed '\(feed.name)'; choose another path for multi")
            } else {
                multi.path = path
            }
        }
        if let value = mapping.value("max_feeds"), let count = value.integer(atLeast: 1) {
            multi.maxFeeds = count
        }
    }

    private static func readListener(_ item: ConfigValue, bindings: inout [Binding]) -> ListenerConfig? {
        guard let mapping = item.mapping() else {
            return nil
        }
        mapping.hint("access_log", "'access_log' is set once, at the top level: one log for every listener")
        let addressValue = mapping.required("address")
        let address = addressValue?.hostPort()
        if let address {
            bindings.append(Binding(address: address, owner: item.path, mark: addressValue?.mark))
        }
        var tls: ServerTLSConfig?
        var tlsIsValid = true
        if let tlsValue = mapping.value("tls"), !tlsValue.isNull {
            if let tlsMapping = mapping.child("tls") {
                let certificateValue = tlsMapping.required("certificate")
                let certificate = certificateValue?.readableFile()
                let privateKey = tlsMapping.required("private_key")?.readableFile()
                var minVersion = "1.2"
                if let value = tlsMapping.value("min_version") {
                    if let version = value.choice(["1.2", "1.3"]) {
                        minVersion = version
                    } else {
                        tlsIsValid = false
                    }
                }
                if let certificate, let privateKey {
                    let candidate = ServerTLSConfig(
                        certificate: certificate,
                        privateKey: privateKey,
                        minVersion: minVersion
                    )
                    do {
                        // Load them as the listener will: a PEM that does not parse, or a key that does not
                        // belong to the certificate, is a config error here rather than a failure at bind.
                        try tlsMapping.context.tlsCheck.listener(candidate)
                        tls = candidate
                    } catch {
                        tlsMapping.context.report(
                            "\(tlsMapping.path): the certificate and private key cannot be used together: \(error)",
                            at: certificateValue?.mark ?? tlsMapping.mark
                        )
                        tlsIsValid = false
                    }
                } else {
                    tlsIsValid = false
                }
            } else {
                tlsIsValid = false
            }
        }
        var delivery: DeliveryMode?
        var deliveryIsValid = true
        if let value = mapping.value("delivery") {
            if let word = value.choice(["stream", "poll"]) {
                delivery = DeliveryMode(rawValue: word)
            } else {
                deliveryIsValid = false
            }
        }
        var proxyProtocol = false
        var proxyProtocolIsValid = true
        if let value = mapping.value("proxy_protocol") {
            if let flag = value.bool() {
                proxyProtocol = flag
            } else {
                proxyProtocolIsValid = false
            }
        }
        guard let address, tlsIsValid, deliveryIsValid, proxyProtocolIsValid else {
            return nil
        }
        return ListenerConfig(address: address, tls: tls, delivery: delivery, proxyProtocol: proxyProtocol)
    }

    /// `admin:` absent keeps the default 127.0.0.1:9090; `null` or `false` turns the admin listener off.
    private static func readAdmin(_ value: ConfigValue, bindings: inout [Binding]) -> AdminConfig? {
        if value.isNull {
            return nil
        }
        if case .scalar(let scalar) = value.node, scalar.style == .plain,
            ["false", "False", "FALSE"].contains(scalar.string)
        {
            return nil
        }
        guard case .mapping = value.node else {
            value.fail(
                "expected a mapping with 'address', or false to disable the admin listener, got "
                    + ConfigValue.kind(of: value.node)
            )
            return nil
        }
        guard let mapping = value.mapping() else {
            return nil
        }
        let addressValue = mapping.required("address")
        let address = addressValue?.hostPort()
        var token: AdminToken?
        var tokenIsValid = true
        if let tokenValue = mapping.value("token_file"), !tokenValue.isNull {
            token = self.readAdminToken(tokenValue)
            tokenIsValid = token != nil
        }
        guard let address, tokenIsValid else {
            return nil
        }
        bindings.append(Binding(address: address, owner: "admin", mark: addressValue?.mark))
        return AdminConfig(address: address, token: token)
    }

    /// `admin.token_file`: read now (and on every reload, so a rotated file takes effect with SIGHUP), one
    /// trailing line break dropped as `echo` and editors leave one. Errors point at the value.
    private static func readAdminToken(_ value: ConfigValue) -> AdminToken? {
        guard let path = value.readableFile() else {
            return nil
        }
        let text: String
        do {
            text = try self.readFile(path)
        } catch {
            value.fail("cannot read '\(path)': \(error.message)")
            return nil
        }
        var line = Substring(text)
        while let last = line.last, last == "\n" || last == "\r" || last == "\r\n" {
            line.removeLast()
        }
        guard !line.isEmpty else {
            value.fail("the token file '\(path)' is empty")
            return nil
        }
        do {
            return try AdminToken(String(line))
        } catch {
            // The message never quotes the file's content: it is a secret even when it is malformed.
            value.fail("in '\(path)': \(error.message)")
            return nil
        }
    }

    /// Two listeners on one address would fail at bind time with a less helpful message; say it here.
    private static func checkBindings(_ bindings: [Binding], context: ConfigContext) {
        for (index, binding) in bindings.enumerated() {
            guard let first = bindings[..<index].first(where: { $0.address == binding.address }) else {
                continue
            }
            let firstLine = first.mark.map { " (line \($0.line))" } ?? " (by default)"
            context.report(
                "\(binding.owner).address: address \(binding.address) is already used by \(first.owner)\(firstLine)",
                at: binding.mark
            )
        }
    }

    private static func applyLimits(_ mapping: ConfigMapping, to limits: inout LimitsConfig) {
        if let value = mapping.value("max_clients"), let count = value.integer(atLeast: 1) {
            limits.maxClients = count
        }
        if let value = mapping.value("header_timeout"), let timeout = value.duration(positive: true) {
            limits.headerTimeout = timeout
        }
        // A request line plus a Host header can pass 1 KiB; anything smaller rejects real browsers.
        if let value = mapping.value("max_header_bytes"), let bytes = value.size(atLeast: 1024) {
            limits.maxHeaderBytes = bytes
        }
        if let value = mapping.value("max_streams_per_connection"), let count = value.integer(atLeast: 1) {
            limits.maxStreamsPerConnection = count
        }
        if let value = mapping.value("premature_resets_per_second"), let count = value.integer(atLeast: 1) {
            limits.prematureResetsPerSecond = count
        }
        if let value = mapping.value("max_new_feeds_per_second"), let count = value.integer(atLeast: 0) {
            limits.maxNewFeedsPerSecond = count
        }
        if let value = mapping.value("max_new_feeds_per_address_per_second"), let count = value.integer(atLeast: 0) {
            limits.maxNewFeedsPerAddressPerSecond = count
        }
        if let value = mapping.value("max_clients_per_address"), let count = value.integer(atLeast: 0) {
            limits.maxClientsPerAddress = count
        }
    }

    // MARK: - Feeds

    /// What makes a feed unique, with where it was written, for the duplicate checks.
    private struct FeedIdentity {
        var owner: String
        var name: String
        var nameMark: Mark?
        var namePath: String
        var path: PathTemplate
        var pathMark: Mark?
        var pathPath: String

        /// `/rooms/{room}` and `/rooms/{id}` match the same requests, so they compare equal here.
        var shape: String {
            self.path.segments.map {
                switch $0 {
                case .literal(let literal): return literal
                case .parameter: return "{}"
                }
            }.joined(separator: "/")
        }
    }

    private static func readFeed(_ item: ConfigValue, defaults: FeedSettings) -> (FeedConfig, FeedIdentity)? {
        guard let mapping = item.mapping() else {
            return nil
        }
        let pathValue = mapping.required("path")
        var path: PathTemplate?
        if let text = pathValue?.nonEmptyString("a path such as /prices") {
            do {
                path = try PathTemplate(parsing: text)
            } catch {
                pathValue?.fail(error.message)
            }
        }

        var nameValue = mapping.value("name")
        var name: String?
        if let value = nameValue {
            name = value.nonEmptyString("a feed name")
        } else {
            name = path?.description
            nameValue = pathValue
        }

        var upstreamURL: UpstreamURL?
        var urlValue: ConfigValue?
        if let upstreamValue = mapping.required("upstream") {
            if upstreamValue.isNull {
                upstreamValue.fail("expected a mapping with 'url', got no value")
            } else if let upstream = mapping.child("upstream") {
                urlValue = upstream.required("url")
            }
        }
        if let urlValue, let text = urlValue.nonEmptyString("a URL such as https://backend/stream") {
            do {
                upstreamURL = try UpstreamURL(parsing: text)
            } catch {
                urlValue.fail(error.message)
            }
        }
        if let path, let url = upstreamURL, let urlValue {
            let parameters = path.parameterNames
            for placeholder in url.placeholderNames where !parameters.contains(placeholder) {
                urlValue.fail("placeholder '{\(placeholder)}' in the URL is not a parameter of the path '\(path)'")
                upstreamURL = nil
            }
        }

        var connect: ConnectMode?
        if let value = mapping.value("connect"), let word = value.choice(["always", "on_demand"]) {
            connect = ConnectMode(rawValue: word)
        }
        let linger = mapping.value("linger")?.duration()
        var ids: IDMode?
        if let value = mapping.value("ids"), let word = value.choice(["upstream", "gateway"]) {
            ids = IDMode(rawValue: word)
        }
        // Meaningful for templates only, but harmless elsewhere, so not rejected.
        let maxFeeds = mapping.value("max_feeds")?.integer(atLeast: 1)

        var settings = defaults
        self.applySettings(mapping, to: &settings)
        if let url = upstreamURL, url.isTLS, let urlValue {
            do {
                // As the upstream client will load them: a CA bundle or client certificate that does not
                // parse, or a key that does not match, is reported here, not at the first connect.
                try mapping.context.tlsCheck.upstream(settings.upstream.tls)
            } catch {
                urlValue.fail("the upstream TLS settings cannot be used: \(error)")
            }
        }

        if let problem = self.authProblem(settings.auth),
            !problem.sources.contains(where: { source in
                mapping.context.hasErrors(under: "defaults.auth.\(source)")
                    || mapping.context.hasErrors(under: "\(item.path).auth.\(source)")
            })
        {
            // Blamed on the feed's own `auth:` when it wrote one, else on the feed (the mode came from `defaults:`).
            let blamed = mapping.value("auth")?.mark ?? item.mark
            let origin = mapping.value("auth") == nil ? " (from defaults)" : ""
            mapping.context.report("\(item.path): \(problem.message)\(origin)", at: blamed)
        }

        guard let name, let path, let upstreamURL else {
            return nil
        }
        var feed = FeedConfig(name: name, path: path, upstreamURL: upstreamURL, settings: settings)
        if let connect { feed.connect = connect }
        if let linger { feed.linger = linger }
        if let ids { feed.ids = ids }
        if let maxFeeds { feed.maxFeeds = maxFeeds }
        let identity = FeedIdentity(
            owner: item.path,
            name: name,
            nameMark: nameValue?.mark,
            namePath: nameValue?.path ?? item.path,
            path: path,
            pathMark: pathValue?.mark,
            pathPath: pathValue?.path ?? item.path
        )
        return (feed, identity)
    }

    /// The feeds accepted so far, by shape and by name: a lookup per new feed, so that checking a list of
    /// 10,000 feeds is linear (a scan of the earlier ones per feed took seconds).
    private struct SeenFeeds {
        var byShape: [String: FeedIdentity] = [:]
        var byName: [String: FeedIdentity] = [:]
    }

    /// Reports a feed whose path or name an earlier feed already has, at the later one, naming the earlier's line.
    /// Returns false when the feed is a duplicate; records it in `earlier` otherwise.
    private static func checkUnique(
        _ feed: FeedIdentity,
        against earlier: inout SeenFeeds,
        context: ConfigContext
    ) -> Bool {
        var unique = true
        let shape = feed.shape
        if let first = earlier.byShape[shape] {
            let line = first.pathMark.map { ", line \($0.line)" } ?? ""
            let what =
                first.path.description == feed.path.description
                ? "duplicate path '\(feed.path)'"
                : "path '\(feed.path)' matches the same requests as '\(first.path)'"
            context.report("\(feed.pathPath): \(what) (first used by \(first.owner)\(line))", at: feed.pathMark)
            unique = false
        } else if let first = earlier.byName[feed.name] {
            // Checked only for distinct paths: a duplicate path with a defaulted name would be reported twice.
            let line = first.nameMark.map { ", line \($0.line)" } ?? ""
            context.report(
                "\(feed.namePath): duplicate feed name '\(feed.name)' (first used by \(first.owner)\(line))",
                at: feed.nameMark
            )
            unique = false
        }
        if unique {
            earlier.byShape[shape] = feed
            earlier.byName[feed.name] = feed
        }
        return unique
    }

    // MARK: - Files

    /// Reads the whole file as UTF-8. POSIX calls rather than `Data(contentsOf:)` so the error names the
    /// cause as the system does ("No such file or directory", "Permission denied").
    static func readFile(_ path: String) throws(ConfigValueError) -> String {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else {
            throw ConfigValueError(message: String(cString: strerror(errno)))
        }
        defer { close(descriptor) }
        var status = stat()
        if fstat(descriptor, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR {
            throw ConfigValueError(message: "is a directory")
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ConfigValueError(message: String(cString: strerror(errno)))
            }
            if count == 0 { break }
            bytes += buffer[..<count]
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigValueError(message: "the file is not valid UTF-8")
        }
        return text
    }

    /// The absolute folder of `file`, so that resolved TLS paths stay valid if the process changes directory.
    private static func directory(of file: String) -> String {
        let absolute = file.hasPrefix("/") ? file : FileManager.default.currentDirectoryPath + "/" + file
        guard let slash = absolute.lastIndex(of: "/"), slash != absolute.startIndex else {
            return "/"
        }
        return String(absolute[..<slash])
    }
}
