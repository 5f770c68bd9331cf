import FuzzCompositeID
import FuzzConfig
import FuzzProxyHeader
import FuzzRequestHead
import FuzzSSEParser
import FuzzSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// `ssegate-fuzz --target=NAME [libFuzzer flags] [corpus directories or inputs]`. The target is named by a flag
// libFuzzer ignores (it skips every `--` flag) rather than a first argument taken out of argv, because with
// `-fork=N` libFuzzer starts its workers with the same arguments: they must name the target too.
let targets: [(name: String, run: FuzzTarget)] = [
    (
        "FuzzSSEParser",
        { start, count in
            SSEParserTarget.run(fuzzInput(start, count))
            return 0
        }
    ),
    (
        "FuzzConfig",
        { start, count in
            ConfigTarget.run(fuzzInput(start, count))
            return 0
        }
    ),
    (
        "FuzzRequestHead",
        { start, count in
            RequestHeadTarget.run(fuzzInput(start, count))
            return 0
        }
    ),
    (
        "FuzzCompositeID",
        { start, count in
            CompositeIDTarget.run(fuzzInput(start, count))
            return 0
        }
    ),
    (
        "FuzzProxyHeader",
        { start, count in
            ProxyHeaderTarget.run(fuzzInput(start, count))
            return 0
        }
    ),
]

let names = CommandLine.arguments.dropFirst().compactMap { argument in
    argument.hasPrefix("--target=") ? String(argument.dropFirst("--target=".count)) : nil
}
if names == ["list"] {
    for target in targets { print(target.name) }
    exit(0)
}
guard names.count == 1, let target = targets.first(where: { $0.name == names[0] }) else {
    // A static text written straight to stderr: nothing allocated that LeakSanitizer would report at exit.
    let usage: StaticString =
        "usage: ssegate-fuzz --target=NAME [libFuzzer flags] [corpus directories or inputs]; --target=list\n"
    _ = write(2, usage.utf8Start, usage.utf8CodeUnitCount)
    exit(2)
}
runLibFuzzer(target.run)
