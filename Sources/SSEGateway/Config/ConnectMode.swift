/// When a feed holds its upstream connection.
public enum ConnectMode: String, Sendable, Equatable {
    /// From start-up to shutdown (templates: from the first subscribe on).
    case always
    /// Only while clients are connected, plus `linger` after the last one leaves.
    case onDemand = "on_demand"
}
