import ArgumentParser
import Foundation

struct SSEGateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ssegate",
        abstract:
            "A reverse-proxy gateway for Server-Sent Events: one upstream connection per feed, fanned out to any number of clients.",
        subcommands: [ServeCommand.self, CheckCommand.self, DemoCommand.self, OriginCommand.self, BenchCommand.self]
    )
}
