import NIOCore
import XCTest

@testable import SSEGateway

/// `FeedLifecycle` as a plain value: every transition of the normal flows, with the actions it asks for.
final class FeedLifecycleTests: XCTestCase {
    private typealias Lifecycle = FeedLifecycle
    private typealias JoinID = FeedLifecycle.JoinID

    private let linger = TimeAmount.seconds(30)

    private func onDemand() -> Lifecycle {
        Lifecycle(
            mode: .init(connect: .onDemand, isTemplateInstance: false, linger: self.linger),
            isTemplateInstance: false
        )
    }

    private func always() -> Lifecycle {
        Lifecycle(
            mode: .init(connect: .always, isTemplateInstance: false, linger: self.linger),
            isTemplateInstance: false
        )
    }

    private func template(connect: ConnectMode = .onDemand) -> Lifecycle {
        Lifecycle(
            mode: .init(connect: connect, isTemplateInstance: true, linger: self.linger),
            isTemplateInstance: true
        )
    }

    /// The join id of a `.join` action.
    private func joined(_ action: Lifecycle.Action, file: StaticString = #filePath, line: UInt = #line) -> JoinID? {
        guard case .join(let id, _, _, _) = action else {
            XCTFail("expected a join, got \(action)", file: file, line: line)
            return nil
        }
        return id
    }

    func testAnAlwaysConnectedFeedHoldsItsUpstreamWithoutClients() {
        var feed = self.always()
        XCTAssertEqual(feed.state, .idle)
        XCTAssertEqual(feed.start(), .startUpstream)
        XCTAssertEqual(feed.state, .streaming)
        XCTAssertEqual(feed.start(), .none, "start is idempotent")
        guard let id = self.joined(feed.join()) else { return }
        XCTAssertEqual(
            feed.join(),
            .join(JoinID(value: id.value + 1), cancelLinger: false, startUpstream: false, next: .resolve)
        )
        XCTAssertEqual(feed.lastShardLeft(), .none, "no linger: the upstream stays")
        XCTAssertEqual(feed.state, .streaming)
    }

    func testAnOnDemandFeedStartsWithItsFirstClientAndLingersOutAfterItsLast() {
        var feed = self.onDemand()
        XCTAssertEqual(feed.start(), .none, "the first client starts it")
        XCTAssertEqual(feed.state, .idle)
        XCTAssertEqual(feed.join(), .join(JoinID(value: 1), cancelLinger: false, startUpstream: true, next: .resolve))
        XCTAssertEqual(feed.state, .streaming)
        XCTAssertEqual(feed.join(), .join(JoinID(value: 2), cancelLinger: false, startUpstream: true, next: .resolve))
        XCTAssertEqual(feed.lastShardLeft(), .scheduleLinger(self.linger))
        XCTAssertEqual(feed.state, .lingering)
        // A client within the linger keeps the upstream.
        XCTAssertEqual(feed.join(), .join(JoinID(value: 3), cancelLinger: true, startUpstream: true, next: .resolve))
        XCTAssertEqual(feed.state, .streaming)
        XCTAssertEqual(feed.lingerEnded(isTemplateInstance: false), .none, "a timer due before the join cancelled it")
        XCTAssertEqual(feed.lastShardLeft(), .scheduleLinger(self.linger))
        XCTAssertEqual(feed.lingerEnded(isTemplateInstance: false), .stopUpstream)
        XCTAssertEqual(feed.state, .idle)
        XCTAssertEqual(feed.lingerEnded(isTemplateInstance: false), .none, "a second late timer")
        XCTAssertEqual(feed.join(), .join(JoinID(value: 4), cancelLinger: false, startUpstream: true, next: .resolve))
        XCTAssertEqual(feed.state, .streaming)
    }

    func testATemplateInstanceHoldsItsFirstClientsUntilTheUpstreamAnswers() {
        var feed = self.template()
        XCTAssertEqual(feed.state, .connecting(held: []))
        XCTAssertEqual(feed.start(), .none)
        XCTAssertEqual(
            feed.join(),
            .join(JoinID(value: 1), cancelLinger: false, startUpstream: true, next: .hold(armTimeout: true))
        )
        XCTAssertEqual(
            feed.join(),
            .join(JoinID(value: 2), cancelLinger: false, startUpstream: true, next: .hold(armTimeout: false)),
            "one timer for all held joins"
        )
        XCTAssertEqual(feed.state, .connecting(held: [JoinID(value: 1), JoinID(value: 2)]))
        XCTAssertEqual(feed.upstreamChanged(streaming: false, failure: nil), .none, "connecting is not an answer")
        XCTAssertEqual(
            feed.upstreamChanged(streaming: true, failure: nil),
            .answerHeld([JoinID(value: 1), JoinID(value: 2)])
        )
        XCTAssertEqual(feed.state, .streaming)
        XCTAssertEqual(feed.firstResponseTimedOut(), .none, "a late timer")
        XCTAssertEqual(
            feed.upstreamChanged(streaming: false, failure: .status(404)),
            .none,
            "only the first response counts"
        )
        XCTAssertEqual(feed.join(), .join(JoinID(value: 3), cancelLinger: false, startUpstream: true, next: .resolve))
    }

    func testAnyOtherFailureOrTheTimeoutAnswersTheHeldClientsWithAStream() {
        var failed = self.template()
        _ = failed.join()
        XCTAssertEqual(failed.upstreamChanged(streaming: false, failure: .status(500)), .answerHeld([JoinID(value: 1)]))
        var slow = self.template()
        _ = slow.join()
        XCTAssertEqual(slow.firstResponseTimedOut(), .answerHeld([JoinID(value: 1)]))
        XCTAssertEqual(slow.state, .streaming)
    }

    func testA404Or410ClosesTheInstanceAndRefusesItsHeldClients() {
        for status in [404, 410] {
            var feed = self.template()
            _ = feed.join()
            _ = feed.join()
            XCTAssertEqual(
                feed.upstreamChanged(streaming: false, failure: .status(status)),
                .close(
                    .init(
                        held: [JoinID(value: 1), JoinID(value: 2)],
                        heldAnswer: .upstreamRefused(status: status),
                        parked: [],
                        forget: true
                    )
                )
            )
            XCTAssertEqual(feed.state, .closed)
            XCTAssertEqual(feed.join(), .replyClosed)
            XCTAssertEqual(feed.lastShardLeft(), .none, "the held clients' shards detach after the close")
            XCTAssertEqual(feed.close(), .none)
        }
    }

    func testATemplateInstanceClosesAfterLingeringEvenWithConnectAlways() {
        var feed = self.template(connect: .always)
        _ = feed.join()
        _ = feed.upstreamChanged(streaming: true, failure: nil)
        XCTAssertEqual(feed.lastShardLeft(), .scheduleLinger(self.linger))
        XCTAssertEqual(
            feed.lingerEnded(isTemplateInstance: true),
            .close(.init(held: [], heldAnswer: .closed, parked: [], forget: true))
        )
        XCTAssertEqual(feed.state, .closed)
        XCTAssertEqual(feed.lingerEnded(isTemplateInstance: true), .none)
    }

    func testParkedJoinsAreAnsweredOnceByWhicheverComesFirst() {
        var feed = self.onDemand()
        guard let first = self.joined(feed.join()), let second = self.joined(feed.join()) else { return }
        feed.parked(first)
        feed.parked(second)
        XCTAssertEqual(feed.parked, [first, second])
        XCTAssertEqual(feed.releaseParked(first), .answerParked(first), "its id arrived")
        XCTAssertEqual(feed.releaseParked(first), .none, "its wait timer, late")
        XCTAssertEqual(feed.parked, [second])
        XCTAssertEqual(
            feed.close(),
            .close(.init(held: [], heldAnswer: .closed, parked: [second], forget: false)),
            "a close answers the parked ones"
        )
        XCTAssertEqual(feed.releaseParked(second), .none, "already answered by the close")
        XCTAssertEqual(feed.parked, [])
    }

    func testCloseFromEveryState() {
        var idle = self.onDemand()
        XCTAssertEqual(idle.close(), .close(.init(held: [], heldAnswer: .closed, parked: [], forget: false)))
        XCTAssertEqual(idle.close(), .none, "once")
        XCTAssertEqual(idle.start(), .none, "a shutdown overtook the start")
        var streaming = self.always()
        _ = streaming.start()
        XCTAssertEqual(streaming.close(), .close(.init(held: [], heldAnswer: .closed, parked: [], forget: false)))
        var lingering = self.onDemand()
        _ = lingering.join()
        _ = lingering.lastShardLeft()
        XCTAssertEqual(lingering.close(), .close(.init(held: [], heldAnswer: .closed, parked: [], forget: false)))
        XCTAssertEqual(lingering.lingerEnded(isTemplateInstance: false), .none)
        var connecting = self.template()
        _ = connecting.join()
        XCTAssertEqual(
            connecting.close(),
            .close(.init(held: [JoinID(value: 1)], heldAnswer: .closed, parked: [], forget: false)),
            "held clients are told the feed closed"
        )
        XCTAssertEqual(connecting.upstreamChanged(streaming: true, failure: nil), .none)
        XCTAssertEqual(connecting.firstResponseTimedOut(), .none)
        XCTAssertEqual(connecting.state, .closed)
    }

    // MARK: Reload

    private func reload(
        swap: Bool = false,
        startSwapped: Bool = false,
        cancelLinger: Bool = false,
        startUpstream: Bool = false,
        scheduleLinger: TimeAmount? = nil
    ) -> Lifecycle.Action {
        .reload(
            .init(
                swapUpstream: swap,
                startSwapped: startSwapped,
                cancelLinger: cancelLinger,
                startUpstream: startUpstream,
                scheduleLinger: scheduleLinger
            )
        )
    }

    func testAReloadSwapsTheUpstreamAndRestartsItOnlyIfItRan() {
        var feed = self.onDemand()
        _ = feed.join()
        let mode = feed.mode
        XCTAssertEqual(
            feed.reload(to: mode, upstreamChanged: true, upstreamRunning: true, hasClients: true),
            self.reload(swap: true, startSwapped: true)
        )
        XCTAssertEqual(
            feed.reload(to: mode, upstreamChanged: true, upstreamRunning: false, hasClients: true),
            self.reload(swap: true)
        )
        XCTAssertEqual(
            feed.reload(to: mode, upstreamChanged: false, upstreamRunning: true, hasClients: true),
            self.reload(),
            "settings only: clients, replay and upstream stay"
        )
        XCTAssertEqual(feed.state, .streaming)
    }

    func testAReloadToConnectAlwaysHoldsTheUpstreamAndEndsALinger() {
        let alwaysMode = FeedLifecycle.Mode(connect: .always, isTemplateInstance: false, linger: self.linger)
        var lingering = self.onDemand()
        _ = lingering.join()
        _ = lingering.lastShardLeft()
        XCTAssertEqual(
            lingering.reload(to: alwaysMode, upstreamChanged: false, upstreamRunning: true, hasClients: false),
            self.reload(cancelLinger: true, startUpstream: true)
        )
        XCTAssertEqual(lingering.state, .streaming)
        XCTAssertEqual(lingering.lastShardLeft(), .none)
        var idle = self.onDemand()
        XCTAssertEqual(
            idle.reload(to: alwaysMode, upstreamChanged: false, upstreamRunning: false, hasClients: false),
            self.reload(startUpstream: true)
        )
        XCTAssertEqual(idle.state, .streaming)
    }

    func testAReloadToOnDemandWithoutClientsLingersFromNow() {
        var feed = self.always()
        _ = feed.start()
        let onDemand = FeedLifecycle.Mode(connect: .onDemand, isTemplateInstance: false, linger: .seconds(5))
        XCTAssertEqual(
            feed.reload(to: onDemand, upstreamChanged: false, upstreamRunning: true, hasClients: false),
            self.reload(scheduleLinger: .seconds(5))
        )
        XCTAssertEqual(feed.state, .lingering)
        XCTAssertEqual(
            feed.reload(to: onDemand, upstreamChanged: false, upstreamRunning: true, hasClients: false),
            self.reload(scheduleLinger: .seconds(5)),
            "a changed definition re-arms the linger"
        )
        XCTAssertEqual(feed.lingerEnded(isTemplateInstance: false), .stopUpstream)
        XCTAssertEqual(
            feed.reload(to: onDemand, upstreamChanged: true, upstreamRunning: false, hasClients: false),
            self.reload(swap: true),
            "idle: nothing to let go of"
        )
        XCTAssertEqual(feed.state, .idle)
    }

    func testAReloadOfAConnectingOrClosedFeed() {
        var connecting = self.template()
        _ = connecting.join()
        let mode = connecting.mode
        XCTAssertEqual(
            connecting.reload(to: mode, upstreamChanged: true, upstreamRunning: true, hasClients: true),
            self.reload(swap: true, startSwapped: true)
        )
        XCTAssertEqual(connecting.state, .connecting(held: [JoinID(value: 1)]), "the held clients still wait")
        _ = connecting.close()
        XCTAssertEqual(
            connecting.reload(to: mode, upstreamChanged: true, upstreamRunning: false, hasClients: false),
            .none,
            "a closed feed ignores a reload"
        )
    }

    /// The invalid inputs never occur in the normal flows: drive every flow above through a checker that
    /// mirrors the feed's own bookkeeping (attached shards, held and parked joins).
    func testTheNormalFlowsNeverReachAnInvalidTransition() {
        for mode in [ConnectMode.always, .onDemand] {
            for isTemplate in [false, true] {
                var feed = Lifecycle(
                    mode: .init(connect: mode, isTemplateInstance: isTemplate, linger: self.linger),
                    isTemplateInstance: isTemplate
                )
                _ = feed.start()
                for round in 0..<3 {
                    // Clients come: a template's first ones are held until the first response.
                    let ids = (0..<3).compactMap { _ in self.joined(feed.join()) }
                    XCTAssertEqual(ids.count, 3)
                    _ = feed.upstreamChanged(streaming: round % 2 == 0, failure: round % 2 == 0 ? nil : .closed)
                    feed.parked(ids[0])
                    XCTAssertEqual(feed.releaseParked(ids[0]), .answerParked(ids[0]))
                    // The last client leaves; the linger runs out, or a client comes back in time.
                    _ = feed.lastShardLeft()
                    if round == 1 {
                        _ = self.joined(feed.join())
                        _ = feed.lastShardLeft()
                    }
                    let ended = feed.lingerEnded(isTemplateInstance: isTemplate)
                    if isTemplate {
                        XCTAssertEqual(ended, .close(.init(held: [], heldAnswer: .closed, parked: [], forget: true)))
                        break
                    }
                }
                XCTAssertEqual(
                    feed.close(),
                    isTemplate ? .none : .close(.init(held: [], heldAnswer: .closed, parked: [], forget: false))
                )
            }
        }
    }
}
