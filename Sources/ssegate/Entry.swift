import ArgumentParser
import Foundation

/// Process entry: argument-parser reports usage errors with exit code 64 by default; SPEC §1 wants 1
/// for a bad config or usage, 2 for a runtime failure, always with one line on stderr.
@main
enum Entry {
    static func main() async {
        do {
            var command = try SSEGateCommand.parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch let failure as CommandFailure {
            FileHandle.standardError.write(Data((failure.message + "\n").utf8))
            Foundation.exit(failure.code)
        } catch {
            let code = SSEGateCommand.exitCode(for: error)
            if code == .success {
                SSEGateCommand.exit(withError: error)  // --help, --version: prints and exits 0
            }
            let message = SSEGateCommand.message(for: error)
            let firstLine = message.split(separator: "\n").first.map(String.init) ?? message
            FileHandle.standardError.write(Data(("ssegate: " + firstLine + " (see 'ssegate --help')\n").utf8))
            Foundation.exit(1)
        }
    }
}
