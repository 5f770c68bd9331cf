import ArgumentParser
import Foundation
import Logging
import NIOCore
import SSEGateway
import SSEOrigin

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start the built-in origin and a gateway in front of it, and print the URLs to open."
    )

    @Option(name: .long, help: "Gateway port.")
    var port = 8080
    @Option(name: .long, help: "Origin port.")
    var originPort = 8081
    @Option(name: .long, help: "Admin port.")
    var adminPort = 9090
    @Option(name: .long, help: "Origin events per second.")
    var rate: Double = 2

    func run() async throws {
        let logger = LogSetup.bootstrap(level: "info")
        var options = OriginServer.Options()
        options.port = self.originPort
        options.rate = self.rate
        let origin = OriginServer(options: options)
        do {
            try await origin.start()
        } catch {
            throw CommandFailure.runtime("cannot start the demo origin on 127.0.0.1:\(self.originPort): \(error)")
        }
        let config = Self.config(port: self.port, adminPort: self.adminPort, originPort: origin.port)
        let process = GatewayProcess(config: config, configFile: nil, logger: logger)
        try await process.startOrFail()
        do {
            let base = "http://127.0.0.1:\(self.port)"
            print(
                """

                ssegate demo is running.
                  origin (built-in ticker):  http://127.0.0.1:\(origin.port)/prices
                  gateway feed:              \(base)/prices
                  template feed (per room):  \(base)/rooms/lobby
                  status page (live):        http://127.0.0.1:\(self.adminPort)/
                  metrics:                   http://127.0.0.1:\(self.adminPort)/metrics
                  feeds (JSON):              http://127.0.0.1:\(self.adminPort)/api/feeds

                Try:
                  curl -N \(base)/prices
                  curl -N -H 'Last-Event-ID: 3' \(base)/prices
                Stop with Ctrl-C.

                """
            )
            fflush(nil)  // nil: every output stream (Swift 6 forbids naming the global `stdout`)
        }
        try await process.run()
        try await origin.stop()
    }

    static func config(port: Int, adminPort: Int, originPort: Int) -> GatewayConfig {
        var config = GatewayConfig()
        config.listen = [ListenerConfig(address: HostPort(host: "127.0.0.1", port: port))]
        config.admin = AdminConfig(address: HostPort(host: "127.0.0.1", port: adminPort))
        var settings = FeedSettings()
        settings.keepalive = .seconds(15)
        settings.cors.allowOrigins = ["*"]
        let prices = FeedConfig(
            name: "prices",
            path: try! PathTemplate(parsing: "/prices"),
            upstreamURL: try! UpstreamURL(parsing: "http://127.0.0.1:\(originPort)/prices"),
            settings: settings
        )
        var rooms = FeedConfig(
            name: "rooms",
            path: try! PathTemplate(parsing: "/rooms/{room}"),
            upstreamURL: try! UpstreamURL(parsing: "http://127.0.0.1:\(originPort)/rooms/{room}"),
            settings: settings
        )
        rooms.connect = .onDemand
        rooms.linger = .seconds(10)
        config.feeds = [prices, rooms]
        return config
    }
}
