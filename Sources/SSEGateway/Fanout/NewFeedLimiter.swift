import NIOCore

/// Token buckets over the opening of template instances (each costs an upstream connection and a
/// `max_feeds` slot): one for the whole gateway (`limits.max_new_feeds_per_second`) and one per client
/// address (`limits.max_new_feeds_per_address_per_second`), so that requests for random `/rooms/{x}`
/// cannot turn into as many upstream requests, and one client cannot spend everyone's allowance.
/// A value without I/O; the rates come with each call so that a reload applies at once. A rate of 0
/// turns that bucket off. Each bucket holds at most one second's worth of tokens (the burst).
struct NewFeedLimiter {
    enum Decision: Equatable {
        case allowed
        /// The gateway-wide rate is spent.
        case overGateway
        /// This client address's rate is spent.
        case overAddress
    }

    struct Rates: Equatable, Sendable {
        var perSecond: Int
        var perAddressPerSecond: Int
    }

    private struct Bucket {
        var tokens: Double
        var updated: NIODeadline

        /// Refills at `rate` per second up to `rate` (at least 1) tokens.
        mutating func refill(rate: Int, now: NIODeadline) {
            let capacity = Double(max(1, rate))
            let elapsed = Double(max(0, (now - self.updated).nanoseconds)) / 1e9
            self.tokens = min(capacity, self.tokens + elapsed * Double(rate))
            self.updated = now
        }
    }

    /// Addresses tracked at most; past it, addresses whose bucket is full again are forgotten (they
    /// would start full anyway), and if none is, the table starts over (the gateway bucket still holds).
    static let maxAddresses = 10_000

    private var gateway: Bucket?
    private var byAddress: [String: Bucket] = [:]

    var trackedAddresses: Int { self.byAddress.count }

    /// Takes a token from both buckets, or from neither when either is empty.
    mutating func admit(address: String?, rates: Rates, now: NIODeadline) -> Decision {
        var gateway = self.gateway ?? Bucket(tokens: Double(max(1, rates.perSecond)), updated: now)
        gateway.refill(rate: rates.perSecond, now: now)
        self.gateway = gateway
        var perAddress: Bucket?
        if let address, rates.perAddressPerSecond > 0 {
            var bucket =
                self.byAddress[address] ?? Bucket(tokens: Double(max(1, rates.perAddressPerSecond)), updated: now)
            bucket.refill(rate: rates.perAddressPerSecond, now: now)
            perAddress = bucket
            if bucket.tokens < 1 {
                self.byAddress[address] = bucket
                return .overAddress
            }
        }
        if rates.perSecond > 0 && gateway.tokens < 1 {
            return .overGateway
        }
        if rates.perSecond > 0 {
            self.gateway?.tokens -= 1
        }
        if let address, var bucket = perAddress {
            bucket.tokens -= 1
            self.byAddress[address] = bucket
            self.forgetIdleAddresses(rate: rates.perAddressPerSecond, now: now)
        }
        return .allowed
    }

    private mutating func forgetIdleAddresses(rate: Int, now: NIODeadline) {
        guard self.byAddress.count > Self.maxAddresses else { return }
        self.byAddress = self.byAddress.filter { _, bucket in
            var bucket = bucket
            bucket.refill(rate: rate, now: now)
            return bucket.tokens < Double(max(1, rate))
        }
        if self.byAddress.count > Self.maxAddresses {
            self.byAddress.removeAll()
        }
    }
}
