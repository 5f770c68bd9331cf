import AsyncHTTPClient
import JWTKit
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The keys of a JWKS URL as a ``TokenVerifier`` sees them: the last good set, refreshed by the start-up fetch,
/// by ``runRefresh()`` every `refresh`, and by tokens naming a `kid` the set lacks (see ``JWKSRefreshSchedule``
/// for when that fetches).
///
/// A failed fetch (unreachable, non-2xx, not a JWKS, no usable key) keeps the last good set; the failure is
/// logged when a streak of them starts and again when it ends. A document equal to the last good one is not
/// rebuilt (and its skipped keys are not logged again).
///
/// Tasks: a fetch runs in an unstructured task so that the tokens waiting for it and the refresh loop can
/// share it; it ends within the fetch timeout, and the end of ``runRefresh()`` cancels it and stops the
/// source, after which nothing starts one.
final class JWKSKeySource: Sendable {
    private struct Guarded {
        var current: JWKSKeySet
        var schedule: JWKSRefreshSchedule
        var inFlight: Task<Void, Never>?
    }

    private let fetcher: JWKSFetcher
    private let refresh: TimeAmount
    /// The `kid`s of the configured files, which a fetched key may not take over.
    private let reservedKeyIDs: Set<String>
    private let logger: Logger
    /// The snapshot, the schedule and the running fetch, changed together.
    private let guarded: NIOLockedValueBox<Guarded>

    init(
        fetcher: JWKSFetcher,
        refresh: TimeAmount,
        minRefresh: TimeAmount,
        reservedKeyIDs: Set<String>,
        logger: Logger
    ) {
        self.fetcher = fetcher
        self.refresh = refresh
        self.reservedKeyIDs = reservedKeyIDs
        var logger = logger
        logger[metadataKey: "jwks_url"] = "\(fetcher.url)"
        self.logger = logger
        self.guarded = NIOLockedValueBox(
            Guarded(current: .empty(), schedule: JWKSRefreshSchedule(minInterval: minRefresh), inFlight: nil)
        )
    }

    /// The key and pinned algorithm for `keyID`; when the set lacks it, waits for a refetch (if the schedule
    /// allows one or one is running) and looks again. Nil: the `kid` is unknown.
    func key(for keyID: String) async -> (JWTKeyCollection, JWTSigningAlgorithm)? {
        let (found, fetch) = self.guarded.withLockedValue {
            guarded -> ((JWTKeyCollection, JWTSigningAlgorithm)?, Task<Void, Never>?) in
            if let algorithm = guarded.current.pinnedByKeyID[keyID] { return ((guarded.current.keys, algorithm), nil) }
            return (nil, self.fetchTask(guarded: &guarded, decision: guarded.schedule.unknownKeyID(at: .now())))
        }
        if let found { return found }
        guard let fetch else { return nil }
        await fetch.value
        return self.guarded.withLockedValue { guarded in
            guarded.current.pinnedByKeyID[keyID].map { (guarded.current.keys, $0) }
        }
    }

    /// Fetches now (or joins the fetch already running) and waits for it: the start-up fetch and each refresh.
    func refreshNow() async {
        let fetch = self.guarded.withLockedValue { guarded in
            self.fetchTask(guarded: &guarded, decision: guarded.schedule.refreshDue(at: .now()))
        }
        guard let fetch else { return }
        await withTaskCancellationHandler {
            await fetch.value
        } onCancel: {
            fetch.cancel()
        }
    }

    /// Refreshes every `refresh` until the calling task is cancelled; then cancels a fetch still running and
    /// stops the source (tokens naming an unknown `kid` are refused without a fetch from then on).
    func runRefresh() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(nanoseconds: UInt64(max(self.refresh.nanoseconds, 0)))
            } catch {
                break
            }
            await self.refreshNow()
        }
        let running = self.guarded.withLockedValue { guarded in
            guarded.schedule.stop()
            return guarded.inFlight
        }
        running?.cancel()
    }

    /// The running fetch to wait for (the one just started on `.start`), or nil on `.refuse`.
    private func fetchTask(guarded: inout Guarded, decision: JWKSRefreshSchedule.Decision) -> Task<Void, Never>? {
        switch decision {
        case .refuse:
            return nil
        case .join:
            return guarded.inFlight
        case .start:
            // Started under the lock so that a concurrent demand sees it as running; its body takes the lock
            // only after this returns.
            let task = Task { await self.fetchAndInstall() }
            guarded.inFlight = task
            return task
        }
    }

    private func fetchAndInstall() async {
        let outcome = await self.fetchKeySet()
        let change = self.guarded.withLockedValue { guarded -> JWKSRefreshSchedule.HealthChange in
            guarded.inFlight = nil
            switch outcome {
            case .success(let keySet):
                if let keySet { guarded.current = keySet }
                return guarded.schedule.fetchEnded(succeeded: true)
            case .failure:
                return guarded.schedule.fetchEnded(succeeded: false)
            }
        }
        // A fetch cancelled by the end of `runRefresh()` is no outage.
        guard !Task.isCancelled else { return }
        switch (change, outcome) {
        case (.startedFailing, .failure(let error)):
            self.logger.warning(
                "JWKS fetch failed; keeping the last good key set until a fetch succeeds (logged once per outage)",
                metadata: ["error": "\(error)"]
            )
        case (.recovered, _):
            self.logger.notice("JWKS fetch succeeded again")
        default:
            break
        }
    }

    /// The new set (nil: the document is the last good one, nothing to change), or why there is none.
    private func fetchKeySet() async -> Result<JWKSKeySet?, JWKSFetchError> {
        let document: ByteBuffer
        do {
            document = try await self.fetcher.fetch()
        } catch {
            return .failure(error)
        }
        let last = self.guarded.withLockedValue { $0.current.document }
        if document == last { return .success(nil) }
        let outcome: JWKSKeySet.Outcome
        do {
            outcome = try await JWKSKeySet.build(from: document, reservedKeyIDs: self.reservedKeyIDs)
        } catch {
            return .failure(JWKSFetchError(message: error.message))
        }
        guard let keySet = outcome.keySet else {
            let reasons = outcome.skipped.prefix(3).joined(separator: "; ")
            return .failure(
                JWKSFetchError(message: "no usable key in the document" + (reasons.isEmpty ? "" : ": " + reasons))
            )
        }
        // Logged when a new document is installed, so once per change of the provider's set.
        self.logger.info(
            "JWKS keys loaded",
            metadata: ["kids": "\(keySet.pinnedByKeyID.keys.sorted().joined(separator: ","))"]
        )
        for line in outcome.skipped {
            self.logger.warning("JWKS key skipped", metadata: ["reason": "\(line)"])
        }
        return .success(keySet)
    }
}
