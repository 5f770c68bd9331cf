import NIOHTTP1

/// `trusted_proxies`: the networks whose `Forwarded` / `X-Forwarded-For` headers say who the client is.
/// A request from anywhere else keeps its connection's address and its headers are ignored, so a client
/// cannot choose its own address (and so its per-address limits) by sending the header itself.
///
/// The walk is nginx's `real_ip_recursive on`: from the connection's address (the TCP peer, or the PROXY
/// protocol source), while the address is trusted, step one hop left in the header; the first untrusted
/// address is the client. When every hop is trusted the leftmost is the client; a hop that names no
/// address stops the walk at the last address known.
public struct TrustedProxies: Sendable, Equatable {
    var networks: [IPNetwork]

    /// No network: every forwarding header is ignored (the default).
    public init() {
        self.networks = []
    }

    /// Parses CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses; nil when one is not valid.
    public init?(_ cidrs: [String]) {
        var networks: [IPNetwork] = []
        for cidr in cidrs {
            guard let network = IPNetwork(cidr) else { return nil }
            networks.append(network)
        }
        self.networks = networks
    }

    public var isEmpty: Bool { self.networks.isEmpty }

    /// The CIDRs as written back in their canonical form (`10.0.0.0/8`).
    public var cidrs: [String] { self.networks.map(\.description) }

    func trusts(_ address: IPAddress) -> Bool {
        self.networks.contains { $0.contains(address) }
    }

    /// The request's client address: `connection` (the peer's IP) unless it is trusted and the request's
    /// forwarding headers name another.
    func clientAddress(connection: String?, headers: HTTPHeaders) -> String? {
        guard !self.networks.isEmpty, let connection, var current = IPAddress(connection), self.trusts(current) else {
            return connection
        }
        for hop in ForwardedHops.parse(headers).reversed() {
            guard let hop else { break }
            current = hop
            if !self.trusts(hop) { break }
        }
        return current.description
    }
}
