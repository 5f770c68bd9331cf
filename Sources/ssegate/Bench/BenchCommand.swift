import ArgumentParser
import Foundation
import SSEBench

/// `ssegate bench`: the command line of the load tool; the clients, the measuring and the report are SSEBench's.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract:
            "Load tool: N concurrent SSE clients against a URL; deliveries/s, bytes/s, errors, evictions and latency percentiles.",
        discussion: """
            Latency is measured from the send timestamp ("ts", µs) that `ssegate origin` puts in each event's data. \
            http:// and https:// URLs; --http2 uses h2c with prior knowledge for http and ALPN h2 for https. \
            "stream opens" is how fast the clients got their 200 heads: from the first connect to the last head \
            (raise --connect-concurrency to measure the server's rate of new streams, e.g. with a token in --header). \
            --poll: each client polls (`?transport=poll` added) on one keep-alive HTTP/1.1 connection, sending \
            the last event id as Last-Event-ID, and asks again after each response's `retry:`, as EventSource \
            does; the report adds polls/s. --multi: the URL is a multi-feed stream (/multi?feed=…&feed=…); \
            each event is tied to its feed by the composite id, and gaps are counted per feed. \
            --reconnect: each client comes back after a close or a refusal as EventSource does (after its \
            retry:, or a 503's Retry-After) with Last-Event-ID; gaps and duplicates are counted across its \
            reconnects, and the report adds reconnects, 503s, the time from the first close until every \
            client had an event again, and the peak streams opened in any second (bench/crash-storm.sh).
            """
    )

    @Option(
        name: .long,
        help:
            "The SSE URL (http:// or https://host:port/path); repeat it for the same stream through other front ends (client i uses URL i mod count)."
    )
    var url: [String]
    @Option(name: .long, help: "Concurrent clients.")
    var clients = 100
    @Option(name: .long, help: "Seconds to measure once all clients are connected.")
    var duration: Double = 10
    @Option(name: .long, help: "Connects in flight at once while ramping up.")
    var connectConcurrency = 256
    @Option(
        name: .long,
        help: "Spread clients over source addresses 127.0.0.1 ... 127.0.0.N (needed beyond the ephemeral port range)."
    )
    var sourceAddresses = 1
    @Option(name: .long, help: "Event loop threads of the load tool.")
    var threads = 1
    @Option(name: .long, help: "Events per second the origin sends; with it the report shows expected deliveries.")
    var expectedRate: Double?
    @Flag(
        name: .long,
        help:
            "Poll clients: finite `?transport=poll` responses, asked for again after each one's retry: with Last-Event-ID (HTTP/1.1)."
    )
    var poll = false
    @Flag(
        name: .long,
        help: "The URL is a multi-feed stream (/multi?feed=…): deliveries and gaps per feed, by the composite ids."
    )
    var multi = false
    @Flag(
        name: .long,
        help:
            "Reconnecting clients: back after each close or 503 (retry:, Retry-After) with Last-Event-ID; exactly-once counted across reconnects (HTTP/1.1 streams)."
    )
    var reconnect = false
    @Flag(name: .long, help: "Ask for gzip (Accept-Encoding) and inflate what arrives.")
    var gzip = false
    @Flag(
        name: .long,
        help: "HTTP/2: each client is a stream (h2c with prior knowledge for http://, ALPN h2 for https://)."
    )
    var http2 = false
    @Option(name: .long, help: "With --http2: streams (clients) per connection.")
    var streamsPerConnection = 100
    @Option(name: .long, help: "PEM file of a CA to trust for https:// (else the system's roots).")
    var cacert: String?
    @Flag(name: .long, help: "https:// without verifying the server's certificate.")
    var insecure = false
    @Option(
        name: .long,
        help: ArgumentHelp(
            "A header sent on every request, 'Name: value' (repeatable), e.g. 'Authorization: Bearer TOKEN'.",
            valueName: "header"
        )
    )
    var header: [String] = []
    @Flag(
        name: .long,
        help: "Print one JSON line instead of the text report (progress still goes to stderr unless --quiet)."
    )
    var json = false
    @Flag(name: .long, help: "No progress lines.")
    var quiet = false

    func run() async throws {
        guard let first = self.url.first else {
            throw CommandFailure.config("ssegate bench: --url is required")
        }
        var options = BenchOptions(url: first)
        options.moreURLs = Array(self.url.dropFirst())
        options.clients = self.clients
        options.duration = self.duration
        options.connectConcurrency = self.connectConcurrency
        options.sourceAddresses = self.sourceAddresses
        options.threads = self.threads
        options.expectedRate = self.expectedRate
        options.gzip = self.gzip
        options.http2 = self.http2
        options.streamsPerConnection = self.streamsPerConnection
        options.caCertificateFile = self.cacert
        options.insecure = self.insecure
        options.mode = BenchClientMode(poll: self.poll, multi: self.multi, reconnect: self.reconnect)
        let report: BenchReport
        do {
            options.headers = try self.header.map { try BenchRequestHeader(parsing: $0) }
            report = try await BenchRunner.run(options, progress: self.quiet ? nil : Self.printProgress)
        } catch let error as BenchError {
            switch error.kind {
            case .usage: throw CommandFailure.config("ssegate bench: \(error.description)")
            case .protocolMismatch, .connection: throw CommandFailure.runtime("bench: \(error.description)")
            }
        }
        print(self.json ? report.json : report.text)
    }

    /// Progress goes to stderr, so stdout holds only the report (the JSON line scripts read).
    @Sendable private static func printProgress(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
