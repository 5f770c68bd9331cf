import NIOCore
import XCTest

/// The one polling loop of the tests: reads `read()` every `interval` until `condition` holds or `timeout`
/// passes, and returns the last value read and whether it met the condition. It never fails a test by
/// itself; `poll` and `eventually` (which do) and the waits that only settle before an assertion are this.
func waitUntil<Value>(
    timeout: TimeAmount,
    interval: TimeAmount = .milliseconds(5),
    read: () async throws -> Value,
    until condition: (Value) -> Bool
) async throws -> (value: Value, met: Bool) {
    let deadline = NIODeadline.now() + timeout
    while true {
        let value = try await read()
        if condition(value) { return (value, true) }
        if NIODeadline.now() > deadline { return (value, false) }
        try await Task.sleep(nanoseconds: UInt64(interval.nanoseconds))
    }
}

/// Waits (without failing) until `condition` holds or `timeout` passes; returns whether it held.
@discardableResult
func waitUntil(
    timeout: TimeAmount,
    interval: TimeAmount = .milliseconds(5),
    _ condition: () async throws -> Bool
) async throws -> Bool {
    try await waitUntil(timeout: timeout, interval: interval, read: condition, until: { $0 }).met
}

/// Polls `read()` until `condition` holds (returns that value) or `timeout` passes (fails the test with
/// `describe` of the last value and throws). The test clients' `wait` methods are this.
func poll<Value>(
    _ message: String,
    timeout: TimeAmount,
    file: StaticString,
    line: UInt,
    read: () async throws -> Value,
    describe: (Value) -> String,
    until condition: (Value) -> Bool
) async throws -> Value {
    let (value, met) = try await waitUntil(timeout: timeout, read: read, until: condition)
    if met { return value }
    XCTFail("timed out waiting for \(message); \(describe(value))", file: file, line: line)
    throw TestTimeout(message: message)
}

/// Polls a condition (for state outside a client, e.g. the origin's connection count); fails the test
/// and throws after `timeout`.
func eventually(
    _ message: String,
    timeout: TimeAmount = .seconds(10),
    file: StaticString = #filePath,
    line: UInt = #line,
    _ condition: () async throws -> Bool
) async throws {
    _ = try await poll(
        message,
        timeout: timeout,
        file: file,
        line: line,
        read: condition,
        describe: { _ in "the condition never held" },
        until: { $0 }
    )
}

/// A test client whose state can be read at any moment as a value and described when a wait for it times
/// out: its `wait` is the one polling loop with the client's own failure text.
protocol PolledState: AnyObject {
    associatedtype Snapshot
    var snapshot: Snapshot { get }
    /// What a failed wait prints about the state it last saw.
    func describe(_ snapshot: Snapshot) -> String
}

extension PolledState {
    /// Polls until `condition` holds (returns that snapshot); fails the test with `message` after `timeout`.
    @discardableResult
    func wait(
        _ message: String,
        timeout: TimeAmount = .seconds(10),
        file: StaticString = #filePath,
        line: UInt = #line,
        until condition: (Snapshot) -> Bool
    ) async throws -> Snapshot {
        try await poll(
            message,
            timeout: timeout,
            file: file,
            line: line,
            read: { self.snapshot },
            describe: self.describe,
            until: condition
        )
    }
}

/// A wait that timed out (the test has already failed with `message`).
struct TestTimeout: Error {
    var message: String
}
