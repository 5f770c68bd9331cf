import Foundation
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// Configs that do not load: each kind of error, at its exact line and column.
final class ConfigErrorTests: XCTestCase {
    // MARK: - Unknown keys

    func testUnknownTopLevelKeyWithSuggestion() {
        self.assertRows("UnknownTopLevelKeyWithSuggestion")
    }

    func testUnknownNestedKeyHasTheDocumentedMessage() {
        let errors = ConfigFixtures.errors(
            """
            defaults:
              retry: 3s
              keepalvie: 15s
            """
        )
        XCTAssertEqual(
            errors,
            [
                ConfigError(
                    file: "test.yaml",
                    line: 3,
                    column: 3,
                    message: "unknown key 'keepalvie' in defaults (did you mean 'keepalive'?)"
                )
            ]
        )
        XCTAssertEqual(
            errors.first?.description,
            "test.yaml:3:3: unknown key 'keepalvie' in defaults (did you mean 'keepalive'?)"
        )
    }

    func testUnknownKeyDeepInAFeed() {
        self.assertRows("UnknownKeyDeepInAFeed")
    }

    func testFeedOnlyKeysInDefaultsAreExplained() {
        let errors = ConfigFixtures.errors(
            """
            defaults:
              linger: 5s
              upstream:
                url: http://up/a
            """
        )
        XCTAssertEqual(
            errors.map { "\($0.line):\($0.column) \($0.message)" },
            [
                "2:3 unknown key 'linger' in defaults ('linger' can only be set on a feed)",
                "4:5 unknown key 'url' in defaults.upstream ('url' can only be set in a feed's upstream)",
            ]
        )
    }

    func testMergeKeysAreRejected() {
        let aliased = ConfigFixtures.errors(
            """
            base: &base { retry: 1s }
            defaults:
              <<: *base
            """
        )
        XCTAssertEqual(
            aliased.map { "\($0.line):\($0.column) \($0.message)" },
            [
                "1:1 unknown key 'base' at the top level",
                "3:3 defaults: merge keys ('<<') are not supported; use 'defaults:' to share feed settings",
            ]
        )
        let errors = ConfigFixtures.errors("defaults:\n  <<: { retry: 1s }\n")
        XCTAssertEqual(errors.map(\.line), [2])
        XCTAssertEqual(errors.map(\.column), [3])
        XCTAssertEqual(
            errors.first?.message,
            "defaults: merge keys ('<<') are not supported; use 'defaults:' to share feed settings"
        )
    }

    // MARK: - Values

    func testBadDurations() {
        self.assertRows("BadDurations")
    }

    func testBadSize() {
        self.assertRows("BadSize")
    }

    func testBadBooleans() {
        self.assertRows("BadBooleans")
    }

    func testWrongTypes() {
        self.assertRows("WrongTypes")
    }

    func testOutOfRangeValues() {
        self.assertRows("OutOfRangeValues")
    }

    func testBackoffInitialAboveMaxIsBlamedOnTheValueWritten() {
        self.assertRows("BackoffInitialAboveMaxIsBlamedOnTheValueWritten")
    }

    func testBackoffResetAfterMustBeAPositiveDuration() {
        self.assertRows("BackoffResetAfterMustBeAPositiveDuration")
    }

    func testCredentialsWithWildcardOrigin() {
        self.assertRows("CredentialsWithWildcardOrigin")
    }

    func testBadHeaders() {
        let errors = ConfigFixtures.errors(
            """
            defaults:
              upstream:
                headers:
                  "Bad Name": x
                  X-Split: "a\\r\\nInjected: yes"
                  x-split: again
            """
        )
        XCTAssertEqual(
            errors.map { "\($0.line):\($0.column) \($0.message)" },
            [
                "4:7 defaults.upstream.headers: 'Bad Name' is not a valid header name",
                "5:16 defaults.upstream.headers.X-Split: a header value must not contain line breaks",
                "6:7 defaults.upstream.headers: header 'x-split' is already set (line 5); header names ignore case",
            ]
        )
    }

    // MARK: - Required keys

    func testMissingPath() {
        self.assertRows("MissingPath")
    }

    func testMissingURLAndMissingUpstream() {
        self.assertRows("MissingURLAndMissingUpstream")
    }

    // MARK: - Environment

    func testMissingEnvironmentVariable() {
        ConfigFixtures.assertSingleError(
            """
            feeds:
              - path: /prices
                upstream:
                  url: https://up/prices
                  headers: { Authorization: "Bearer ${PRICES_TOKEN}" }
            """,
            line: 5,
            column: 33,
            "feeds[0].upstream.headers.Authorization: environment variable 'PRICES_TOKEN' is not set",
            environment: ["OTHER": "x"]
        )
    }

    func testBadEnvironmentReference() {
        self.assertRows("BadEnvironmentReference")
    }

    // MARK: - URLs, paths, addresses

    func testBadURLScheme() {
        self.assertRows("BadURLScheme")
    }

    func testBadPathIsReportedWithPathTemplateMessage() {
        self.assertRows("BadPathIsReportedWithPathTemplateMessage")
    }

    func testBadPorts() {
        self.assertRows("BadPorts")
    }

    func testSameAddressTwice() {
        self.assertRows("SameAddressTwice")
    }

    func testTemplatePlaceholderNotInPath() {
        self.assertRows("TemplatePlaceholderNotInPath")
    }

    // MARK: - Duplicates

    func testDuplicatePathIsReportedAtTheSecondNamingTheFirstLine() {
        self.assertRows("DuplicatePathIsReportedAtTheSecondNamingTheFirstLine")
    }

    func testEquivalentTemplatesAreDuplicates() {
        self.assertRows("EquivalentTemplatesAreDuplicates")
    }

    func testDuplicateFeedName() {
        self.assertRows("DuplicateFeedName")
    }

    // MARK: - Files

    func testMissingTLSFile() throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        try ConfigFixtures.touch("key.pem", in: directory)
        ConfigFixtures.assertSingleError(
            """
            listen:
              - address: :8443
                tls:
                  certificate: certs/missing.pem
                  private_key: key.pem
            """,
            line: 4,
            column: 20,
            "listen[0].tls.certificate: file 'certs/missing.pem' (resolved to '\(directory)/certs/missing.pem') does not exist",
            baseDirectory: directory
        )
        ConfigFixtures.assertSingleError(
            """
            defaults:
              upstream:
                tls: { ca: "\(directory)" }
            """,
            line: 3,
            column: 16,
            "defaults.upstream.tls.ca: '\(directory)' is a directory, not a file",
            baseDirectory: directory
        )
    }

    func testClientCertificateNeedsItsKey() throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        try ConfigFixtures.touch("client.pem", in: directory)
        ConfigFixtures.assertSingleError(
            """
            defaults:
              upstream:
                tls: { certificate: client.pem }
            """,
            line: 3,
            column: 10,
            "defaults.upstream.tls: certificate and private_key must be set together",
            baseDirectory: directory
        )
    }

    // MARK: - YAML syntax

    func testYAMLSyntaxErrors() {
        self.assertRows("YAMLSyntaxErrors")
    }

    func testDuplicateYAMLKeyPointsAtTheSecondOccurrence() {
        self.assertRows("DuplicateYAMLKeyPointsAtTheSecondOccurrence")
    }

    // MARK: - Many at once

    func testMultipleErrorsAreReportedTogetherInFileOrder() {
        let errors = ConfigFixtures.errors(
            """
            log_level: loud
            defaults:
              retry: soon
              replay: { max_events: 0 }
            feeds:
              - path: prices
                upstream: { url: "http://up/p" }
              - path: /b
                upstream: { url: "http://up/b", idel_timeout: 1s }
                padding: maybe
            """
        )
        XCTAssertEqual(errors.map { "\($0.line):\($0.column)" }, ["1:12", "3:10", "4:25", "6:11", "9:37", "10:14"])
        XCTAssertEqual(
            errors.map(\.message),
            [
                "log_level: expected one of trace, debug, info, notice, warning, error, critical, got 'loud'",
                "defaults.retry: expected \(ConfigValueParser.durationForm), got 'soon'",
                "defaults.replay.max_events: must be at least 1, got 0",
                "feeds[0].path: path must start with '/'",
                "unknown key 'idel_timeout' in feeds[1].upstream (did you mean 'idle_timeout'?)",
                "feeds[1].padding: expected true or false, got 'maybe'",
            ]
        )
        let description = ConfigLoadError(errors: errors).description
        XCTAssertEqual(description.split(separator: "\n").count, 6)
        XCTAssertTrue(description.hasPrefix("test.yaml:1:12: log_level: expected one of"))
    }

    func testAnErrorInAliasedContentIsReportedAtTheAnchorForEachUse() {
        let errors = ConfigFixtures.errors(
            """
            feeds:
              - path: /a
                upstream: { url: http://up/a }
                replay: &r { max_events: none }
              - path: /b
                upstream: { url: http://up/b }
                replay: *r
            """
        )
        XCTAssertEqual(
            errors.map { "\($0.line):\($0.column) \($0.message)" },
            [
                "4:30 feeds[0].replay.max_events: expected a whole number, got 'none'",
                "4:30 feeds[1].replay.max_events: expected a whole number, got 'none'",
            ]
        )
    }

    func testMismatchedCertificateAndKeyAndUnparsableCAAreConfigErrors() throws {
        let directory = try ConfigFixtures.makeTemporaryDirectory(for: self)
        let other = try TestCertificates.make(keyType: .rsa)
        try ConfigFixtures.touch("server.pem", in: directory)
        try FileManager.default.copyItem(atPath: other.serverKey, toPath: directory + "/other.key")
        try Data("not a certificate\n".utf8).write(to: URL(fileURLWithPath: directory + "/broken-ca.pem"))
        let errors = ConfigFixtures.errors(
            """
            listen:
              - address: :8443
                tls:
                  certificate: server.pem
                  private_key: other.key
            feeds:
              - path: /a
                upstream:
                  url: https://backend/a
                  tls: { ca: broken-ca.pem }
            """,
            baseDirectory: directory
        )
        XCTAssertEqual(errors.count, 2, "\(errors)")
        XCTAssertEqual(errors.first.map { [$0.line, $0.column] }, [4, 20])
        XCTAssertTrue(
            errors.first?.message.hasPrefix("listen[0].tls: the certificate and private key cannot be used together")
                ?? false,
            "\(errors)"
        )
        XCTAssertEqual(errors.last.map { [$0.line, $0.column] }, [9, 12])
        XCTAssertTrue(
            errors.last?.message.hasPrefix("feeds[0].upstream.url: the upstream TLS settings cannot be used") ?? false,
            "\(errors)"
        )
    }

    // MARK: - The table

    /// One config that does not load and every error it gives, as `ssegate check` prints them
    /// (`file:line:column: message`). `group` is the test that checks the row.
    private struct Row {
        var group: String
        var yaml: String
        var errors: [String]

        init(_ group: String, _ yaml: String, _ errors: [String]) {
            self.group = group
            self.yaml = yaml
            self.errors = errors
        }
    }

    /// Asserts every row of `group`: parsing its YAML gives exactly its errors, in order.
    private func assertRows(_ group: String, file: StaticString = #filePath, line: UInt = #line) {
        let rows = Self.rows.filter { $0.group == group }
        XCTAssertFalse(rows.isEmpty, "no rows for \(group)", file: file, line: line)
        for row in rows {
            XCTAssertEqual(
                ConfigFixtures.errors(row.yaml, file: file, line: line).map(\.description),
                row.errors,
                "\(group): \(row.yaml.debugDescription)",
                file: file,
                line: line
            )
        }
    }

    private static let rows: [Row] = [
        Row(
            "UnknownTopLevelKeyWithSuggestion",
            """
            log_level: info
            feed:
              - path: /x
            """,
            ["test.yaml:2:1: unknown key 'feed' at the top level (did you mean 'feeds'?)"]
        ),
        Row(
            "UnknownKeyDeepInAFeed",
            """
            feeds:
              - path: /a
                upstream:
                  url: http://up/a
                  conect_timeout: 5s
            """,
            ["test.yaml:5:7: unknown key 'conect_timeout' in feeds[0].upstream (did you mean 'connect_timeout'?)"]
        ),
        Row(
            "BadDurations",
            """
            defaults:
              retry: 15
            """,
            [
                "test.yaml:2:10: defaults.retry: expected a duration such as 250ms, 1.5s, 5m or 1h (a number followed by ms, s, m or h; or 0), got '15'"
            ]
        ),
        Row(
            "BadDurations",
            """
            feeds:
              - path: /a
                upstream: { url: http://up/a }
                linger: 15 sec
            """,
            [
                "test.yaml:4:13: feeds[0].linger: expected a duration such as 250ms, 1.5s, 5m or 1h (a number followed by ms, s, m or h; or 0), got '15 sec'"
            ]
        ),
        Row(
            "BadSize",
            """
            defaults:
              replay: { max_bytes: 8 megs }
            """,
            [
                "test.yaml:2:24: defaults.replay.max_bytes: expected a size such as 16384, 64KiB or 8MiB (whole bytes, or a whole number followed by KiB, MiB, GiB, KB, MB or GB), got '8 megs'"
            ]
        ),
        Row(
            "BadBooleans",
            """
            defaults:
              padding: yes
            """,
            ["test.yaml:2:12: defaults.padding: expected true or false, got 'yes'"]
        ),
        Row(
            "BadBooleans",
            """
            defaults:
              compression: "true"
            """,
            ["test.yaml:2:16: defaults.compression: expected true or false without quotes, got the string \"true\""]
        ),
        Row(
            "WrongTypes",
            "listen: { address: \":80\" }\n",
            ["test.yaml:1:9: listen: expected a list, got a mapping"]
        ),
        Row(
            "WrongTypes",
            "defaults: [retry]\n",
            ["test.yaml:1:11: defaults: expected a mapping, got a list"]
        ),
        Row(
            "WrongTypes",
            """
            defaults:
              replay: 5
            """,
            ["test.yaml:2:11: defaults.replay: expected a mapping, got '5'"]
        ),
        Row(
            "WrongTypes",
            """
            feeds:
              - /prices
            """,
            ["test.yaml:2:5: feeds[0]: expected a mapping, got '/prices'"]
        ),
        Row(
            "WrongTypes",
            "- a\n- b\n",
            ["test.yaml:1:1: the config must be a mapping of keys such as listen, defaults and feeds, got a list"]
        ),
        Row(
            "OutOfRangeValues",
            "defaults:\n  keepalive: 0\n",
            ["test.yaml:2:14: defaults.keepalive: must be greater than 0, got '0'"]
        ),
        Row(
            "OutOfRangeValues",
            "defaults:\n  replay: { max_events: 0 }\n",
            ["test.yaml:2:25: defaults.replay.max_events: must be at least 1, got 0"]
        ),
        Row(
            "OutOfRangeValues",
            "defaults:\n  client: { max_queue: 512 }\n",
            ["test.yaml:2:24: defaults.client.max_queue: must be at least 1KiB, got '512'"]
        ),
        Row(
            "OutOfRangeValues",
            "limits: { max_clients: -5 }\n",
            ["test.yaml:1:24: limits.max_clients: must be at least 1, got -5"]
        ),
        Row(
            "OutOfRangeValues",
            "limits:\n  premature_resets_per_second: 0\n",
            ["test.yaml:2:32: limits.premature_resets_per_second: must be at least 1, got 0"]
        ),
        Row(
            "OutOfRangeValues",
            "log_level: loud\n",
            [
                "test.yaml:1:12: log_level: expected one of trace, debug, info, notice, warning, error, critical, got 'loud'"
            ]
        ),
        Row(
            "BackoffInitialAboveMaxIsBlamedOnTheValueWritten",
            """
            defaults:
              upstream:
                backoff: { initial: 1m }
            """,
            ["test.yaml:3:25: defaults.upstream.backoff: initial (1m) must not be greater than max (30s)"]
        ),
        Row(
            "BackoffResetAfterMustBeAPositiveDuration",
            """
            defaults:
              upstream:
                backoff: { reset_after: 0s }
            """,
            ["test.yaml:3:29: defaults.upstream.backoff.reset_after: must be greater than 0, got '0s'"]
        ),
        Row(
            "BackoffResetAfterMustBeAPositiveDuration",
            """
            defaults:
              upstream:
                backoff:
                  reset_after: soon
            """,
            [
                "test.yaml:4:20: defaults.upstream.backoff.reset_after: expected a duration such as 250ms, 1.5s, 5m or 1h (a number followed by ms, s, m or h; or 0), got 'soon'"
            ]
        ),
        Row(
            "CredentialsWithWildcardOrigin",
            """
            defaults:
              cors:
                allow_origins: ["*"]
                allow_credentials: true
            """,
            [
                "test.yaml:4:24: defaults.cors.allow_credentials: allow_credentials cannot be true with allow_origins '*' (browsers refuse credentials for a wildcard origin); list the origins instead"
            ]
        ),
        Row(
            "CredentialsWithWildcardOrigin",
            "defaults:\n  cors: { allow_origins: [\"https://a.example/\"] }\n",
            [
                "test.yaml:2:27: defaults.cors.allow_origins[0]: expected '*' or an origin such as https://app.example.com or https://*.example.com (scheme://host[:port], no path), got 'https://a.example/'"
            ]
        ),
        Row(
            "MissingPath",
            """
            feeds:
              - upstream: { url: http://up/a }
            """,
            ["test.yaml:2:5: feeds[0]: missing required key 'path'"]
        ),
        Row(
            "MissingURLAndMissingUpstream",
            """
            feeds:
              - path: /a
                upstream: { connect_timeout: 1s }
            """,
            ["test.yaml:3:15: feeds[0].upstream: missing required key 'url'"]
        ),
        Row(
            "MissingURLAndMissingUpstream",
            """
            feeds:
              - path: /a
            """,
            ["test.yaml:2:5: feeds[0]: missing required key 'upstream'"]
        ),
        Row(
            "MissingURLAndMissingUpstream",
            "listen:\n  - tls: null\n",
            ["test.yaml:2:5: listen[0]: missing required key 'address'"]
        ),
        Row(
            "BadEnvironmentReference",
            "log_level: ${level-name}\n",
            [
                "test.yaml:1:12: log_level: '${level-name}' is not a valid environment variable reference: a name is letters, digits and '_' (write '$${' for a literal '${')"
            ]
        ),
        Row(
            "BadEnvironmentReference",
            "log_level: ${LEVEL\n",
            ["test.yaml:1:12: log_level: unterminated '${' (write '$${' for a literal '${')"]
        ),
        Row(
            "BadURLScheme",
            """
            feeds:
              - path: /a
                upstream:
                  url: ftp://up/a
            """,
            ["test.yaml:4:12: feeds[0].upstream.url: URL scheme must be http or https, not 'ftp'"]
        ),
        Row(
            "BadPathIsReportedWithPathTemplateMessage",
            """
            feeds:
              - path: rooms/{room}
                upstream: { url: http://up/a }
            """,
            ["test.yaml:2:11: feeds[0].path: path must start with '/'"]
        ),
        Row(
            "BadPorts",
            "listen:\n  - address: 0.0.0.0:70000\n",
            ["test.yaml:2:14: listen[0].address: port must be from 1 to 65535, got 70000 in '0.0.0.0:70000'"]
        ),
        Row(
            "BadPorts",
            "admin:\n  address: \":0\"\n",
            ["test.yaml:2:12: admin.address: port must be from 1 to 65535, got 0 in ':0'"]
        ),
        Row(
            "BadPorts",
            "listen:\n  - address: ::1:8080\n",
            ["test.yaml:2:14: listen[0].address: an IPv6 address must be in brackets, as in [::1]:8080; got '::1:8080'"]
        ),
        Row(
            "SameAddressTwice",
            """
            listen:
              - address: 0.0.0.0:8080
              - address: :8080
            """,
            ["test.yaml:3:14: listen[1].address: address 0.0.0.0:8080 is already used by listen[0] (line 2)"]
        ),
        Row(
            "SameAddressTwice",
            "admin: { address: \":8080\" }\n",
            ["test.yaml:1:19: admin.address: address 0.0.0.0:8080 is already used by listen[0] (by default)"]
        ),
        Row(
            "TemplatePlaceholderNotInPath",
            """
            feeds:
              - path: /rooms/{room}
                upstream: { url: "http://up/rooms/{id}" }
            """,
            [
                "test.yaml:3:22: feeds[0].upstream.url: placeholder '{id}' in the URL is not a parameter of the path '/rooms/{room}'"
            ]
        ),
        Row(
            "DuplicatePathIsReportedAtTheSecondNamingTheFirstLine",
            """
            feeds:
              - path: /prices
                upstream: { url: http://up/a }
              - path: /prices
                upstream: { url: http://up/b }
            """,
            ["test.yaml:4:11: feeds[1].path: duplicate path '/prices' (first used by feeds[0], line 2)"]
        ),
        Row(
            "EquivalentTemplatesAreDuplicates",
            """
            feeds:
              - path: /rooms/{a}
                upstream: { url: "http://up/{a}" }
              - path: /rooms/{b}
                upstream: { url: "http://up/{b}" }
            """,
            [
                "test.yaml:4:11: feeds[1].path: path '/rooms/{b}' matches the same requests as '/rooms/{a}' (first used by feeds[0], line 2)"
            ]
        ),
        Row(
            "DuplicateFeedName",
            """
            feeds:
              - name: p
                path: /a
                upstream: { url: http://up/a }
              - name: p
                path: /b
                upstream: { url: http://up/b }
            """,
            ["test.yaml:5:11: feeds[1].name: duplicate feed name 'p' (first used by feeds[0], line 2)"]
        ),
        Row(
            "YAMLSyntaxErrors",
            """
            feeds:
              - path: /a
                upstream: url: http://up/a
            """,
            ["test.yaml:3:18: invalid YAML: mapping values are not allowed in this context"]
        ),
        Row(
            "YAMLSyntaxErrors",
            """
            defaults:
              cors: { allow_origins: [a, b }
            """,
            [
                "test.yaml:2:32: invalid YAML: while parsing a flow sequence at line 2, column 26: did not find expected ',' or ']'"
            ]
        ),
        Row(
            "YAMLSyntaxErrors",
            "a: 1\n---\nb: 2\n",
            [
                "test.yaml:2:1: invalid YAML: expected a single document in the stream at line 1, column 1: but found another document"
            ]
        ),
        Row(
            "DuplicateYAMLKeyPointsAtTheSecondOccurrence",
            """
            defaults:
              retry: 1s
              keepalive: 5s
              retry: 2s
            """,
            ["test.yaml:4:3: duplicate key 'retry' (first at line 2)"]
        ),
        Row(
            "DuplicateYAMLKeyPointsAtTheSecondOccurrence",
            "defaults: { retry: 1s, retry: 2s }\n",
            ["test.yaml:1:13: duplicate key 'retry' in this mapping"]
        ),
    ]
}
