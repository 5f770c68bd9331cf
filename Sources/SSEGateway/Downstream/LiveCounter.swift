import Synchronization

/// A count of live instances of one type.
final class LiveCounter: Sendable {
    private let count = Atomic<Int>(0)

    func increment() {
        self.count.add(1, ordering: .relaxed)
    }

    func decrement() {
        self.count.subtract(1, ordering: .relaxed)
    }

    var value: Int { self.count.load(ordering: .relaxed) }
}
