import CLibFuzzer

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fuzz target: called by libFuzzer once per input, returns 0.
public typealias FuzzTarget = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

/// Runs libFuzzer on `target` with the process's arguments (corpus directories, `-max_total_time=…`) and exits
/// with its status.
///
/// Why not the usual `@_cdecl("LLVMFuzzerTestOneInput")` and libFuzzer's own `main`: SwiftPM links an
/// executable with `--defsym main=<Module>_main`, which `-parse-as-library` leaves undefined, so the executable
/// has a `main.swift` that hands the chosen target's function to libFuzzer's driver instead (with lld, whose
/// `--defsym` takes precedence over the runtime's `main`).
public func runLibFuzzer(_ target: FuzzTarget) -> Never {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    let status = withUnsafeMutablePointer(to: &argv) { argvPointer in
        argvPointer.withMemoryRebound(to: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?.self, capacity: 1) {
            LLVMFuzzerRunDriver(&argc, $0, target)
        }
    }
    exit(status)
}

/// The input of one run as an array (copied: inputs are small, and arrays keep the targets simple).
public func fuzzInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> [UInt8] {
    guard let start, count > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: start, count: count))
}

/// Fails the run with a message libFuzzer shows next to the input it saved as `crash-…`.
public func fuzzFailure(_ message: String) -> Never {
    fatalError(message)
}
