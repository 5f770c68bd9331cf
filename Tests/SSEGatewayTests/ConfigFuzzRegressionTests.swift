import XCTest

@testable import SSEGateway

/// What the config fuzz target (`scripts/fuzz.sh FuzzConfig`) found.
final class ConfigFuzzRegressionTests: XCTestCase {
    /// LeakSanitizer under the fuzzer, on the first seed: every load leaked its whole tree of mappings (each
    /// held the load's context, which held them all), about 7 KB for a small file, on each SIGHUP reload and
    /// each `ssegate check`. A load that succeeds and one that fails must both free their context.
    func testALoadFreesItsContextWhetherItSucceedsOrFails() {
        let before = LiveObjects.configContexts.value
        XCTAssertNoThrow(try Self.parse("log_level: info\nlimits: { max_clients: 5 }\n"))
        XCTAssertThrowsError(try Self.parse("limits:\n  max_clients: many\n  typo: 1\n"))
        XCTAssertEqual(LiveObjects.configContexts.value, before, "config contexts still alive after two loads")
    }

    private static func parse(_ yaml: String) throws -> GatewayConfig {
        try ConfigLoader.parse(
            yaml: yaml,
            file: "fuzz.yaml",
            baseDirectory: "/config-tests-no-such-dir",
            environment: [:],
            tlsCheck: TLSFileCheck(listener: { _ in }, upstream: { _ in })
        )
    }
}
