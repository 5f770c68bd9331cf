import FuzzSupport

runLibFuzzer { start, count in
    CompositeIDTarget.run(fuzzInput(start, count))
    return 0
}
