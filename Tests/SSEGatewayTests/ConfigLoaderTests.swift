import Foundation
import NIOCore
import XCTest

@testable import SSEGateway

/// Configs that load: values, defaults, inheritance, environment, files.
final class ConfigLoaderTests: XCTestCase {
    /// The example from the config documentation, plus a template feed.
    static let fullExample = """
        log_level: info                      # trace debug info notice warning error critical
        listen:
          - address: 0.0.0.0:8080
          - address: "[::]:8443"
            tls: { certificate: certs/server.pem, private_key: certs/server.key, min_version: "1.3" }
        admin:
          address: 127.0.0.1:9090
        shutdown_timeout: 10s
        limits: { max_clients: 100000, header_timeout: 10s, max_header_bytes: 16KiB, premature_resets_per_second: 250 }
        defaults:
          retry: 3s
          keepalive: 15s
          padding: false
          compression: true
          replay: { max_events: 1000, max_bytes: 8MiB, max_age: 10m, gap_event: false }
          client: { max_queue: 1MiB, max_lag: 30s }
          upstream:
            connect_timeout: 5s
            idle_timeout: 45s
            backoff: { initial: 250ms, max: 30s }
            max_event_size: 1MiB
            headers: { X-Api-Key: "${KEY}" }
            tls: { ca: certs/ca.pem, certificate: c.pem, private_key: c.key, verify: true }
          cors: { allow_origins: [], allow_credentials: false }
        feeds:
          - name: prices
            path: /prices
            upstream:
              url: https://backend.internal/stream/prices
              headers: { Authorization: "Bearer ${PRICES_TOKEN}" }
              idle_timeout: 90s
            connect: always
            linger: 30s
            ids: upstream
            max_feeds: 10000
            retry: 1s
          - path: /rooms/{room}
            upstream: { url: "http://chat.internal:8081/rooms/{room}/events?since=0" }
            connect: on_demand
            linger: 1.5s
            ids: gateway
            max_feeds: 50
            replay: { max_events: 10 }
            cors: { allow_origins: ["https://app.example.com"], allow_credentials: true }
        """

    func testFullExampleParsesToTheExpectedValues() throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        for file in ["certs/server.pem", "certs/server.key", "certs/ca.pem", "c.pem", "c.key"] {
            try ConfigFixtures.touch(file, in: directory)
        }
        let config = try ConfigFixtures.parse(
            Self.fullExample,
            environment: ["KEY": "k-123", "PRICES_TOKEN": "tok"],
            baseDirectory: directory
        )

        XCTAssertEqual(config.logLevel, "info")
        XCTAssertEqual(config.listen.count, 2)
        XCTAssertEqual(config.listen[0], ListenerConfig(address: HostPort(host: "0.0.0.0", port: 8080)))
        XCTAssertEqual(config.listen[1].address, HostPort(host: "::", port: 8443))
        XCTAssertEqual(config.listen[1].address.description, "[::]:8443")
        XCTAssertEqual(
            config.listen[1].tls,
            ServerTLSConfig(
                certificate: directory + "/certs/server.pem",
                privateKey: directory + "/certs/server.key",
                minVersion: "1.3"
            )
        )
        XCTAssertEqual(config.admin, AdminConfig(address: HostPort(host: "127.0.0.1", port: 9090)))
        XCTAssertEqual(config.shutdownTimeout, .seconds(10))
        XCTAssertEqual(config.limits.maxClients, 100_000)
        XCTAssertEqual(config.limits.headerTimeout, .seconds(10))
        XCTAssertEqual(config.limits.maxHeaderBytes, 16_384)
        XCTAssertEqual(config.limits.prematureResetsPerSecond, 250)
        XCTAssertEqual(config.feeds.count, 2)

        let prices = config.feeds[0]
        XCTAssertEqual(prices.name, "prices")
        XCTAssertEqual(prices.path.description, "/prices")
        XCTAssertFalse(prices.path.isTemplate)
        XCTAssertEqual(prices.upstreamURL.scheme, "https")
        XCTAssertEqual(prices.upstreamURL.host, "backend.internal")
        XCTAssertEqual(prices.upstreamURL.port, 443)
        XCTAssertEqual(prices.upstreamURL.target, "/stream/prices")
        XCTAssertEqual(prices.connect, .always)
        XCTAssertEqual(prices.linger, .seconds(30))
        XCTAssertEqual(prices.ids, .upstream)
        XCTAssertEqual(prices.maxFeeds, 10_000)
        // Overridden at feed level.
        XCTAssertEqual(prices.settings.retry, .seconds(1))
        XCTAssertEqual(prices.settings.upstream.idleTimeout, .seconds(90))
        // Inherited from defaults.
        XCTAssertEqual(prices.settings.keepalive, .seconds(15))
        XCTAssertFalse(prices.settings.padding)
        XCTAssertTrue(prices.settings.compression)
        XCTAssertEqual(prices.settings.replay.maxEvents, 1000)
        XCTAssertEqual(prices.settings.replay.maxBytes, 8 * 1024 * 1024)
        XCTAssertEqual(prices.settings.replay.maxAge, .minutes(10))
        XCTAssertFalse(prices.settings.replay.gapEvent)
        XCTAssertEqual(prices.settings.client.maxQueue, 1024 * 1024)
        XCTAssertEqual(prices.settings.client.maxLag, .seconds(30))
        XCTAssertEqual(prices.settings.upstream.connectTimeout, .seconds(5))
        XCTAssertEqual(prices.settings.upstream.backoffInitial, .milliseconds(250))
        XCTAssertEqual(prices.settings.upstream.backoffMax, .seconds(30))
        XCTAssertEqual(prices.settings.upstream.maxEventSize, 1024 * 1024)
        XCTAssertEqual(
            prices.settings.upstream.headers,
            [HeaderField(name: "X-Api-Key", value: "k-123"), HeaderField(name: "Authorization", value: "Bearer tok")]
        )
        XCTAssertEqual(
            prices.settings.upstream.tls,
            UpstreamTLSConfig(
                ca: directory + "/certs/ca.pem",
                certificate: directory + "/c.pem",
                privateKey: directory + "/c.key",
                verify: true
            )
        )
        XCTAssertEqual(prices.settings.cors, CORSConfig())

        let rooms = config.feeds[1]
        XCTAssertEqual(rooms.name, "/rooms/{room}", "name defaults to the path as written")
        XCTAssertEqual(rooms.path.parameterNames, ["room"])
        XCTAssertEqual(rooms.upstreamURL.host, "chat.internal")
        XCTAssertEqual(rooms.upstreamURL.port, 8081)
        XCTAssertEqual(rooms.upstreamURL.target, "/rooms/{room}/events?since=0")
        XCTAssertEqual(rooms.connect, .onDemand)
        XCTAssertEqual(rooms.linger, .milliseconds(1500))
        XCTAssertEqual(rooms.ids, .gateway)
        XCTAssertEqual(rooms.maxFeeds, 50)
        XCTAssertEqual(rooms.settings.retry, .seconds(3), "no feed-level retry: the default's")
        XCTAssertEqual(rooms.settings.upstream.idleTimeout, .seconds(45), "the other feed's override does not leak")
        XCTAssertEqual(rooms.settings.replay.maxEvents, 10)
        XCTAssertEqual(rooms.settings.replay.maxBytes, 8 * 1024 * 1024, "replay overrides key by key")
        XCTAssertEqual(rooms.settings.upstream.headers, [HeaderField(name: "X-Api-Key", value: "k-123")])
        XCTAssertEqual(rooms.settings.cors.allowOrigins, ["https://app.example.com"])
        XCTAssertTrue(rooms.settings.cors.allowCredentials)
    }

    func testMinimalConfigGetsAllDefaults() throws {
        let config = try ConfigFixtures.parse(
            """
            feeds:
              - path: /prices
                upstream: { url: "http://localhost:9000/prices" }
            """
        )
        var expected = GatewayConfig()
        expected.feeds = [
            FeedConfig(
                name: "/prices",
                path: try PathTemplate(parsing: "/prices"),
                upstreamURL: try UpstreamURL(parsing: "http://localhost:9000/prices")
            )
        ]
        XCTAssertEqual(config, expected)
        // Spot-check the built-in defaults themselves, so a changed initialiser is noticed here too.
        XCTAssertEqual(config.listen, [ListenerConfig(address: HostPort(host: "0.0.0.0", port: 8080))])
        XCTAssertEqual(config.admin?.address, HostPort(host: "127.0.0.1", port: 9090))
        XCTAssertEqual(config.logLevel, "info")
        let feed = config.feeds[0]
        XCTAssertEqual(feed.connect, .always)
        XCTAssertEqual(feed.linger, .seconds(30))
        XCTAssertEqual(feed.ids, .upstream)
        XCTAssertEqual(feed.maxFeeds, 10_000)
        XCTAssertEqual(feed.settings.retry, .seconds(3))
        XCTAssertEqual(feed.settings.keepalive, .seconds(15))
        XCTAssertEqual(feed.settings.replay.maxEvents, 1000)
        XCTAssertEqual(feed.settings.upstream.connectTimeout, .seconds(5))
        XCTAssertEqual(feed.settings.upstream.headers, [])
        XCTAssertNil(feed.settings.upstream.tls)
        XCTAssertEqual(feed.upstreamURL.port, 9000)
    }

    func testEmptyDocumentsAreAllDefaultsWithNoFeeds() throws {
        for yaml in ["", "# only a comment\n", "~", "feeds:\ndefaults:\nlisten: null\n"] {
            let config = try ConfigFixtures.parse(yaml)
            XCTAssertEqual(config, GatewayConfig(), "for \(yaml.debugDescription)")
            XCTAssertEqual(config.feeds, [])
        }
    }

    func testFeedSettingsOverrideDefaultsKeyByKey() throws {
        let config = try ConfigFixtures.parse(
            """
            defaults:
              retry: 7s
              keepalive: 2m
              padding: true
              replay: { max_events: 50, max_bytes: 64KB, max_age: 1h, gap_event: true }
              client: { max_queue: 2MiB, max_lag: 5s }
              upstream:
                connect_timeout: 2s
                backoff: { initial: 1s, max: 1m, reset_after: 2m }
                max_event_size: 64KiB
              cors: { allow_origins: ["https://a.example"] }
            feeds:
              - path: /a
                upstream:
                  url: http://up/a
                  backoff: { initial: 500ms }
                replay: { max_events: 5 }
                client: { max_lag: 0.25s }
                padding: false
                cors: { allow_credentials: true }
              - path: /b
                upstream: { url: http://up/b }
            """
        )
        let a = config.feeds[0].settings
        XCTAssertEqual(a.retry, .seconds(7))
        XCTAssertEqual(a.keepalive, .minutes(2))
        XCTAssertFalse(a.padding)
        XCTAssertEqual(a.replay.maxEvents, 5)
        XCTAssertEqual(a.replay.maxBytes, 64_000)
        XCTAssertEqual(a.replay.maxAge, .hours(1))
        XCTAssertTrue(a.replay.gapEvent)
        XCTAssertEqual(a.client.maxQueue, 2 * 1024 * 1024)
        XCTAssertEqual(a.client.maxLag, .milliseconds(250))
        XCTAssertEqual(a.upstream.connectTimeout, .seconds(2))
        XCTAssertEqual(a.upstream.backoffInitial, .milliseconds(500))
        XCTAssertEqual(a.upstream.backoffMax, .minutes(1))
        XCTAssertEqual(
            a.upstream.backoffResetAfter,
            .minutes(2),
            "reset_after is inherited key by key like initial and max"
        )
        XCTAssertEqual(a.upstream.maxEventSize, 64 * 1024)
        XCTAssertEqual(a.cors.allowOrigins, ["https://a.example"])
        XCTAssertTrue(a.cors.allowCredentials)

        let b = config.feeds[1].settings
        XCTAssertTrue(b.padding)
        XCTAssertEqual(b.replay.maxEvents, 50)
        XCTAssertEqual(b.client.maxLag, .seconds(5))
        XCTAssertEqual(b.upstream.backoffInitial, .seconds(1))
        XCTAssertFalse(b.cors.allowCredentials)
    }

    func testFeedHeadersMergeOverDefaultsCaseInsensitively() throws {
        let config = try ConfigFixtures.parse(
            """
            defaults:
              upstream:
                headers:
                  X-Api-Key: default-key
                  Accept-Language: en
            feeds:
              - path: /a
                upstream:
                  url: http://up/a
                  headers: { x-api-key: feed-key, X-Extra: "1" }
            """
        )
        XCTAssertEqual(
            config.feeds[0].settings.upstream.headers,
            [
                HeaderField(name: "x-api-key", value: "feed-key"),
                HeaderField(name: "Accept-Language", value: "en"),
                HeaderField(name: "X-Extra", value: "1"),
            ]
        )
    }

    func testUpstreamTLSOverridesKeyByKeyAndNullDropsIt() throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        try ConfigFixtures.touch("ca.pem", in: directory)
        try ConfigFixtures.touch("other-ca.pem", in: directory)
        let config = try ConfigFixtures.parse(
            """
            defaults:
              upstream:
                tls: { ca: ./ca.pem }
            feeds:
              - path: /keeps-ca
                upstream: { url: https://up/a, tls: { verify: false } }
              - path: /own-ca
                upstream: { url: https://up/b, tls: { ca: "\(directory)/other-ca.pem" } }
              - path: /no-tls
                upstream: { url: https://up/c, tls: null }
            """,
            baseDirectory: directory
        )
        XCTAssertEqual(
            config.feeds[0].settings.upstream.tls,
            UpstreamTLSConfig(ca: directory + "/ca.pem", verify: false)
        )
        XCTAssertEqual(config.feeds[1].settings.upstream.tls, UpstreamTLSConfig(ca: directory + "/other-ca.pem"))
        XCTAssertNil(config.feeds[2].settings.upstream.tls)
    }

    func testEnvironmentVariablesExpandEverywhereAndDollarDollarEscapes() throws {
        let config = try ConfigFixtures.parse(
            """
            log_level: ${LEVEL}
            defaults:
              retry: ${RETRY}
              padding: ${PADDING}
            feeds:
              - path: /${NAME}
                upstream:
                  url: http://${HOST}:${PORT}/x
                  headers: { X-Literal: "$${NOT_EXPANDED} costs $5", X-Both: "${A}${B}" }
            """,
            environment: [
                "LEVEL": "debug", "RETRY": "250ms", "PADDING": "true", "NAME": "quotes", "HOST": "up.internal",
                "PORT": "7000", "A": "1", "B": "${A}",
            ]
        )
        XCTAssertEqual(config.logLevel, "debug")
        let feed = config.feeds[0]
        XCTAssertEqual(feed.settings.retry, .milliseconds(250))
        XCTAssertTrue(feed.settings.padding)
        XCTAssertEqual(feed.path.description, "/quotes")
        XCTAssertEqual(feed.upstreamURL.host, "up.internal")
        XCTAssertEqual(feed.upstreamURL.port, 7000)
        XCTAssertEqual(
            feed.settings.upstream.headers,
            [
                HeaderField(name: "X-Literal", value: "${NOT_EXPANDED} costs $5"),
                // A value is inserted verbatim, not expanded again.
                HeaderField(name: "X-Both", value: "1${A}"),
            ]
        )
    }

    func testAdminCanBeDisabledWithFalseOrNull() throws {
        for value in ["false", "null", "~", ""] {
            let config = try ConfigFixtures.parse("admin: \(value)\n")
            XCTAssertNil(config.admin, "admin: \(value)")
        }
        let config = try ConfigFixtures.parse("admin: { address: \":9999\" }\n")
        XCTAssertEqual(config.admin, AdminConfig(address: HostPort(host: "0.0.0.0", port: 9999)))
    }

    func testListenAddressForms() throws {
        let config = try ConfigFixtures.parse(
            """
            listen:
              - address: :8080
              - address: "[::1]:8081"
              - address: localhost:80
              - address: 10.0.0.1:65535
            """
        )
        XCTAssertEqual(
            config.listen.map(\.address),
            [
                HostPort(host: "0.0.0.0", port: 8080),
                HostPort(host: "::1", port: 8081),
                HostPort(host: "localhost", port: 80),
                HostPort(host: "10.0.0.1", port: 65535),
            ]
        )
        XCTAssertTrue(config.listen.allSatisfy { $0.tls == nil })
    }

    func testAnchorsAndAliasesAreFollowed() throws {
        let config = try ConfigFixtures.parse(
            """
            feeds:
              - path: /a
                upstream: { url: http://up/a }
                replay: &small { max_events: 3, max_age: 1m }
              - path: /b
                upstream: { url: http://up/b }
                replay: *small
            """
        )
        XCTAssertEqual(config.feeds[1].settings.replay.maxEvents, 3)
        XCTAssertEqual(config.feeds[1].settings.replay.maxAge, .minutes(1))
    }

    func testLoadReadsAFileAndResolvesTLSPathsAgainstItsFolder() throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        try ConfigFixtures.touch("tls/cert.pem", in: directory)
        try ConfigFixtures.touch("tls/key.pem", in: directory)
        let file = directory + "/gateway.yaml"
        try Data(
            """
            listen:
              - address: 0.0.0.0:8443
                tls: { certificate: tls/cert.pem, private_key: ../\((directory as NSString).lastPathComponent)/tls/key.pem }
            feeds:
              - path: /p
                upstream: { url: "http://up/${WHAT}" }
            """.utf8
        ).write(to: URL(fileURLWithPath: file))

        let config = try ConfigLoader.load(file: file, environment: ["WHAT": "prices"])
        XCTAssertEqual(
            config.listen[0].tls,
            ServerTLSConfig(certificate: directory + "/tls/cert.pem", privateKey: directory + "/tls/key.pem")
        )
        XCTAssertEqual(config.feeds[0].upstreamURL.target, "/prices")
    }

    func testLoadReportsAMissingFileAtLineOne() throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        let file = directory + "/missing.yaml"
        do {
            _ = try ConfigLoader.load(file: file, environment: [:])
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(
                error.errors,
                [
                    ConfigError(file: file, line: 1, column: 1, message: "cannot read file: No such file or directory")
                ]
            )
            XCTAssertEqual(error.description, "\(file):1:1: cannot read file: No such file or directory")
        }
        do {
            _ = try ConfigLoader.load(file: directory, environment: [:])
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.description, "\(directory):1:1: cannot read file: is a directory")
        }
    }

    func testLoadErrorsNameTheFileAsGiven() throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        let file = directory + "/bad.yaml"
        try Data("retry: 3s\n".utf8).write(to: URL(fileURLWithPath: file))
        do {
            _ = try ConfigLoader.load(file: file, environment: [:])
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(
                error.description,
                "\(file):1:1: unknown key 'retry' at the top level ('retry' belongs under 'defaults:' or a feed)"
            )
        }
    }
}
