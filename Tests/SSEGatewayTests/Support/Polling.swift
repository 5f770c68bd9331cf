import NIOCore
import XCTest

/// Polls `read()` every 5 ms until `condition` holds (returns that value) or `timeout` passes (fails the
/// test with `describe` of the last value and throws). The test clients' `wait` methods are this.
func poll<Value>(
    _ message: String,
    timeout: TimeAmount,
    file: StaticString,
    line: UInt,
    read: () -> Value,
    describe: (Value) -> String,
    until condition: (Value) -> Bool
) async throws -> Value {
    let deadline = NIODeadline.now() + timeout
    while true {
        let value = read()
        if condition(value) { return value }
        if NIODeadline.now() > deadline {
            XCTFail("timed out waiting for \(message); \(describe(value))", file: file, line: line)
            throw TestTimeout(message: message)
        }
        try await Task.sleep(nanoseconds: 5_000_000)
    }
}
