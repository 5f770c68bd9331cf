import ArgumentParser
import Foundation
import SSEGateway
import SSEOrigin
import UnixSignals

struct OriginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "origin",
        abstract: "A built-in SSE origin: a ticker with `id:` and a send timestamp in each event, on any path."
    )

    @Option(name: .long, help: "Address to listen on.")
    var host = "127.0.0.1"
    @Option(name: .long, help: "Port to listen on.")
    var port = 8081
    @Option(name: .long, help: "Events per second.")
    var rate: Double = 1
    @Option(name: .long, help: "Padding bytes in each event's data.")
    var payload = 0

    func run() async throws {
        var options = OriginServer.Options()
        options.host = self.host
        options.port = self.port
        options.rate = self.rate
        options.payload = self.payload
        options.keepalive = .seconds(15)
        let origin = OriginServer(options: options)
        do {
            try await origin.start()
        } catch {
            throw CommandFailure.runtime("cannot listen on \(self.host):\(self.port): \(error)")
        }
        print(
            "ssegate origin: http://\(self.host):\(origin.port)/<any path>  (\(self.rate) events/s, \(self.payload) bytes padding)"
        )
        signal(SIGHUP, SIG_IGN)
        // The first SIGTERM or SIGINT stops the origin.
        for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) { break }
        try await origin.stop()
    }
}
