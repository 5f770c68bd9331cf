import NIOConcurrencyHelpers
import NIOCore

/// The gateway-wide sampler behind the rates of `/api/feeds`: one timer per admin listener (every
/// second, one hop to each loop), stopped when the listener closes.
final class AdminRates: Sendable {
    private let metrics: GatewayMetrics
    private let state = NIOLockedValueBox<(sampler: StatusSampler, latest: StatusSample, task: RepeatedTask?)>(
        (StatusSampler(), StatusSample(), nil)
    )

    init(metrics: GatewayMetrics) {
        self.metrics = metrics
    }

    var latest: StatusSample { self.state.withLockedValue { $0.latest } }

    func start(on loop: EventLoop, every interval: TimeAmount = AdminStream.defaultInterval) {
        let task = loop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: interval) { [weak self] _ in
            guard let self else { return loop.makeSucceededVoidFuture() }
            return self.metrics.snapshot(on: loop).map { snapshot in
                self.state.withLockedValue { $0.latest = $0.sampler.sample(snapshot) }
            }.recover { _ in }
        }
        self.state.withLockedValue { $0.task = task }
    }

    func stop() {
        self.state.withLockedValue { state in
            state.task?.cancel()
            state.task = nil
        }
    }
}
