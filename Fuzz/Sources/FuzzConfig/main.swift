import FuzzSupport

runLibFuzzer { start, count in
    ConfigTarget.run(fuzzInput(start, count))
    return 0
}
