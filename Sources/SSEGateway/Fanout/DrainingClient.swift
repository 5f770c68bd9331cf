import NIOCore

/// One client of a drain and the shard it is removed from.
struct DrainingClient {
    let subscriber: Subscriber
    let shard: FeedShard
}
