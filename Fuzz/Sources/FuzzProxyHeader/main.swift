import FuzzSupport

runLibFuzzer { start, count in
    ProxyHeaderTarget.run(fuzzInput(start, count))
    return 0
}
