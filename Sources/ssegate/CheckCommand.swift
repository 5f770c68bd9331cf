import ArgumentParser
import Foundation
import SSEGateway

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a config file: exit 0 when valid, 1 with FILE:LINE:COLUMN: message lines when not."
    )

    @Option(name: .long, help: "The config file.")
    var config = "config/ssegate.yaml"

    func run() throws {
        do {
            let loaded = try ConfigLoader.load(file: self.config)
            print(
                "\(self.config): ok (\(loaded.feeds.count) feed\(loaded.feeds.count == 1 ? "" : "s"), \(loaded.listen.count) listener\(loaded.listen.count == 1 ? "" : "s"))"
            )
        } catch {
            throw CommandFailure.config(error.description)
        }
    }
}
