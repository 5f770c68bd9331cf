// swift-tools-version:6.0
import PackageDescription

// The libFuzzer targets of ssegate, in one executable, built and run by `scripts/fuzz.sh TARGET SECONDS`.
// A package of its own (depending on the gateway by path) so that the gateway's `swift build` and `swift test`
// never see them: they only link with `-sanitize=fuzzer`, which also instruments every module they use.
let package = Package(
    name: "ssegate-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "ssegate", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // libFuzzer's `LLVMFuzzerRunDriver`, declared for Swift.
        .target(name: "CLibFuzzer"),
        // What every target shares: running libFuzzer from `main`.
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"]),
        // The WHATWG event-stream algorithm written out plainly, to check `SSEParser` against.
        .target(name: "SSEReference", dependencies: [.product(name: "SSE", package: "ssegate")]),
        // One module per fuzz target: what it feeds the gateway's code and what it checks.
        .target(
            name: "FuzzSSEParser",
            dependencies: [
                "FuzzSupport", "SSEReference", .product(name: "SSE", package: "ssegate"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "FuzzConfig",
            dependencies: ["FuzzSupport", .product(name: "SSEGateway", package: "ssegate")]
        ),
        .target(
            name: "FuzzRequestHead",
            dependencies: [
                "FuzzSupport", .product(name: "SSEGateway", package: "ssegate"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "FuzzProxyHeader",
            dependencies: [
                "FuzzSupport",
                .product(name: "ProxyProtocol", package: "ssegate"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "FuzzCompositeID",
            dependencies: ["FuzzSupport", .product(name: "SSEGateway", package: "ssegate")]
        ),
        // The one fuzzer executable, `ssegate-fuzz --target=NAME [libFuzzer flags] [corpus dirs or inputs]`: one
        // product, so `swift build --product ssegate-fuzz` builds every target in one invocation and links once,
        // and builds nothing else of the gateway's package (not its `ssegate` executable, bench or origin).
        .executableTarget(
            name: "ssegate-fuzz",
            dependencies: [
                "FuzzSupport", "FuzzSSEParser", "FuzzConfig", "FuzzRequestHead", "FuzzProxyHeader", "FuzzCompositeID",
            ]
        ),
    ]
)
