// Here, not in Config/: the config layer does not name the fan-out types that use its values.
extension LimitsConfig {
    /// The new-feed limits as the fan-out's `NewFeedLimiter` takes them.
    var newFeedRates: NewFeedLimiter.Rates {
        NewFeedLimiter.Rates(
            perSecond: self.maxNewFeedsPerSecond,
            perAddressPerSecond: self.maxNewFeedsPerAddressPerSecond
        )
    }
}
