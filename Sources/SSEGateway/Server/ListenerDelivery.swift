import NIOConcurrencyHelpers

/// A bound listener's `delivery:`, read once per new connection; a reload changes it in place (the
/// listener keeps its socket), so connections accepted after the reload follow the new setting.
final class ListenerDelivery: Sendable {
    private let box: NIOLockedValueBox<DeliveryMode?>

    init(_ mode: DeliveryMode?) {
        self.box = NIOLockedValueBox(mode)
    }

    var mode: DeliveryMode? {
        get { self.box.withLockedValue { $0 } }
        set { self.box.withLockedValue { $0 = newValue } }
    }
}
