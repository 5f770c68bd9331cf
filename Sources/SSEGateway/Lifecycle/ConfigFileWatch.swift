import NIOCore

/// What `reload_on_change` knows about the config file: whether to poll it, how often, and the text a
/// reload last read from it. A poll reloads only when the text differs from that, so a file that is
/// rejected is reported once, not at every poll, and a SIGHUP that already applied a change is not
/// followed by a second reload of the same text.
///
/// Content, not modification time: Kubernetes updates a ConfigMap volume by swapping a symlink to a
/// new folder, which leaves the mounted path's own times and inode as they were for some readers.
struct ConfigFileWatch: Sendable, Equatable {
    /// `reload_on_change` of the config in force.
    var enabled: Bool
    /// `reload_check_interval` of the config in force.
    var interval: TimeAmount
    /// The text last read by a reload (or at start); nil when it could not be read.
    private(set) var lastText: String?

    init(enabled: Bool, interval: TimeAmount, text: String?) {
        self.enabled = enabled
        self.interval = interval
        self.lastText = text
    }

    init(config: GatewayConfig, text: String?) {
        self.init(enabled: config.reloadOnChange, interval: config.reloadCheckInterval, text: text)
    }

    /// A reload read `text`: later polls compare against it.
    mutating func noteRead(_ text: String?) {
        self.lastText = text
    }

    /// Whether a poll that read `text` should reload. An unreadable file (nil: gone for a moment while
    /// it is replaced, or removed) is not a change: the config in force stays and the next poll looks again.
    func shouldReload(after text: String?) -> Bool {
        guard self.enabled, let text else { return false }
        return text != self.lastText
    }

    /// The settings of a config that was just applied; the text read stays what it was.
    mutating func adopt(_ config: GatewayConfig) {
        self.enabled = config.reloadOnChange
        self.interval = config.reloadCheckInterval
    }
}
