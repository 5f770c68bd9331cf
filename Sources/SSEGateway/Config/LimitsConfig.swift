import NIOCore

/// Process-wide limits.
public struct LimitsConfig: Sendable, Equatable {
    /// Over it a new client gets `503` with `Retry-After`.
    public var maxClients: Int = 100_000
    /// Poll requests open at once (`defaults.poll.max_waiting`), gateway-wide and apart from `maxClients`;
    /// over it a poll gets `503` with a jittered `Retry-After`.
    public var maxPollWaiting: Int = 100_000
    /// A client that has not sent a whole request head within this time is disconnected.
    public var headerTimeout: TimeAmount = .seconds(10)
    /// A request head larger than this gets `431` and the connection closes.
    public var maxHeaderBytes: Int = 16 * 1024
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`: SSE subscriptions one connection may hold.
    public var maxStreamsPerConnection: Int = 128
    /// HTTP/2 streams that clients may reset right after opening them (within a second or two), per
    /// second, summed over all connections of one listener (the rapid reset attack spreads them over
    /// many connections). Over it the connection that reset one gets GOAWAY and is closed.
    public var prematureResetsPerSecond: Int = 1000
    /// Template instances (`/rooms/{room}` values) the gateway opens per second, over all templates;
    /// over it a request for a new value gets `503` with a jittered `Retry-After`. 0: no limit.
    public var maxNewFeedsPerSecond: Int = 100
    /// The same per client address, so one client cannot spend the gateway's allowance. 0 (the default):
    /// no limit. Off by default because behind a load balancer without `proxy_protocol` or
    /// `trusted_proxies` every client has the balancer's address, and one abuser would spend the
    /// allowance of all.
    public var maxNewFeedsPerAddressPerSecond: Int = 0
    /// Streams (not polls) one client address may hold at once, counted as `max_clients` counts them (a
    /// multi-feed stream holds one per feed); over it a new stream gets `503` with a jittered `Retry-After`.
    /// 0 (the default): no limit. Off by default for the reason above, and because many users behind one
    /// NAT share an address anyway: the right value depends on who the clients are.
    public var maxClientsPerAddress: Int = 0
    /// Top-level `trusted_proxies`; kept here because a reload swaps it, like the limits, for every
    /// listener at once, and the request handlers read it with them.
    public var trustedProxies = TrustedProxies()
    /// The multi-feed endpoint (top-level `multi:`); kept here because, like the limits, a reload swaps it
    /// for every listener at once.
    public var multi = MultiConfig()

    public init() {}
}
