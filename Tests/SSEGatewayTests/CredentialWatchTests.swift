import NIOCore
import NIOEmbedded
import XCTest

import struct Foundation.Date

@testable import SSEGateway

/// `CredentialWatch` on an embedded loop with a recording session: the warning and the end come when due,
/// nothing comes after `cancel()`, and a fired timer is let go (a stream re-checked every minute for
/// days must not keep one timer per re-check).
final class CredentialWatchTests: XCTestCase {
    private final class RecordingSession: CredentialWatcher {
        var expiring: [Date] = []
        var ended: [AccessLogEnd] = []
        func credentialExpiring(at expiresAt: Date) { self.expiring.append(expiresAt) }
        func credentialExpired(_ end: AccessLogEnd) { self.ended.append(end) }
    }

    private func watch() throws -> (CredentialWatch, RecordingSession, EmbeddedGateway) {
        let gateway = EmbeddedGateway(feeds: [try EmbeddedGateway.feed("/prices")])
        let session = RecordingSession()
        return (CredentialWatch(for: session, loop: gateway.loop, gateway: gateway.context), session, gateway)
    }

    func testTheWarningAndTheEndComeWhenDueAndFiredTimersAreLetGo() throws {
        let (watch, session, gateway) = try self.watch()
        let expiresAt = Date(timeIntervalSinceNow: 10)
        watch.expire(at: expiresAt, warnBefore: .seconds(4))
        XCTAssertEqual(watch.pendingTimers, 2)
        gateway.loop.advanceTime(by: .seconds(7))
        XCTAssertEqual(session.expiring, [expiresAt], "warned 4 s ahead")
        XCTAssertEqual(session.ended, [])
        XCTAssertEqual(watch.pendingTimers, 1, "the warning's timer is gone once it fired")
        gateway.loop.advanceTime(by: .seconds(4))
        XCTAssertEqual(session.ended, [.authExpired])
        XCTAssertEqual(watch.pendingTimers, 0)
    }

    func testARecheckThatFiredIsLetGoAndNothingComesAfterCancel() throws {
        let (watch, session, gateway) = try self.watch()
        // No authorizer is installed for the feed: the re-check fires, finds none, and arms no other.
        let feed = try EmbeddedGateway.feed("/prices")
        watch.recheck(every: .seconds(60), AuthRequest(headers: [:], path: "/prices"), feed: feed)
        watch.expire(at: Date(timeIntervalSinceNow: 3600), warnBefore: .seconds(60))
        XCTAssertEqual(watch.pendingTimers, 3)
        gateway.loop.advanceTime(by: .seconds(61))
        XCTAssertEqual(watch.pendingTimers, 2, "the fired re-check is let go")
        watch.cancel()
        XCTAssertEqual(watch.pendingTimers, 0)
        gateway.loop.advanceTime(by: .seconds(3600))
        XCTAssertEqual(session.expiring, [], "nothing after cancel()")
        XCTAssertEqual(session.ended, [])
    }
}
