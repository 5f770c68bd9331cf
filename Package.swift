// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ssegate",
    // macOS 15: `Synchronization.Atomic` (the live-object and budget counters).
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ssegate", targets: ["ssegate"]),
        // For the fuzz targets in Fuzz/, a separate package that depends on this one by path; a plain
        // `swift build` builds the same modules as before.
        .library(name: "SSE", targets: ["SSE"]),
        .library(name: "ProxyProtocol", targets: ["ProxyProtocol"]),
        .library(name: "SSEGateway", targets: ["SSEGateway"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        // JWT verification for `auth: jwt` (issue 11): signatures, JWKS and claims; no hand-written crypto.
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.0.0"),
        // Short request/response calls of access control (a JWKS URL, the forward-auth backend): pooled
        // connections, timeouts and TLS. The long-lived upstream streams keep their own NIO client.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // SHA-256 of forward-auth credentials, the cache's keys (already in the graph through jwt-kit).
        .package(url: "https://github.com/apple/swift-crypto", "4.1.0"..<"6.0.0"),
    ],
    targets: [
        // Pure protocol: the SSE event model, the incremental parser and the serializer. No I/O.
        .target(
            name: "SSE",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        // Pure protocol: the PROXY protocol v1/v2 header a load balancer puts before a client's bytes. No I/O,
        // so the fuzz targets can link it alone.
        .target(
            name: "ProxyProtocol",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        // zlib itself, for the gzip fragments every compressed client shares (`FragmentDeflater`): raw deflate
        // with sync flushes, and CRC-32 combining. Links `libz` (zlib1g-dev), as compress-nio does.
        .target(
            name: "CZlib",
            linkerSettings: [.linkedLibrary("z")]
        ),
        // The gateway: config, feeds, replay, per-loop hubs, upstream client, downstream pipeline, admin.
        .target(
            name: "SSEGateway",
            dependencies: [
                "SSE",
                "ProxyProtocol",
                "CZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The built-in origin behind `ssegate origin` and `ssegate demo`, the tests and the bench scripts: a ticker
        // of timestamped events with `Last-Event-ID` resume, and failure modes for tests.
        .target(
            name: "SSEOrigin",
            dependencies: [
                "SSE",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The load tool behind `ssegate bench`: N SSE clients over HTTP/1.1 or HTTP/2, cleartext or TLS,
        // counting deliveries, gaps and origin-to-client latency at as little CPU per event as it can. It measures
        // the gateway from outside, so it shares no code with it.
        .target(
            name: "SSEBench",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        .executableTarget(
            name: "ssegate",
            dependencies: [
                "SSEGateway",
                "SSEOrigin",
                "SSEBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SSETests",
            dependencies: ["SSE", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "ProxyProtocolTests",
            dependencies: ["ProxyProtocol", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // What several test targets share: the polling helper, the HTTP/1.1 (and TLS) and HTTP/2 test
        // clients, raw connections, test certificates. Knows no gateway internals.
        .testTarget(
            name: "SSEGateTestSupport",
            dependencies: [
                "SSE",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        .testTarget(
            name: "SSEGatewayTests",
            dependencies: [
                "SSE",
                "SSEGateway",
                "ProxyProtocol",
                "SSEOrigin",
                "SSEGateTestSupport",
                // The bench run against a live in-process gateway (BenchTests).
                "SSEBench",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                // Signs the tokens the auth tests verify, at test time.
                .product(name: "JWTKit", package: "jwt-kit"),
                // The client a JWKS URL is fetched with (the auth tests serve the JWKS themselves)
                // and drives `ForwardAuthorizer` against a backend in the test process.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // The load tool's own parts (scanner, chunked decoder, gzip receiver) and its runner against
        // scripted servers, without a gateway.
        .testTarget(
            name: "SSEBenchTests",
            dependencies: [
                "SSEBench",
                "SSEGateTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        // The built `ssegate` binary as a user runs it: exit codes, signals, reload, the cluster script,
        // a graceful restart (fed by an in-process origin).
        .testTarget(
            name: "SSEGateCLITests",
            dependencies: [
                "ssegate",
                "SSEOrigin",
                "SSEGateTestSupport",
                "SSE",
                // The reconnecting load clients of the crash storm (CrashStormTests).
                "SSEBench",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
    ]
)
