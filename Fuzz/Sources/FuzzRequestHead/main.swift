import FuzzSupport

runLibFuzzer { start, count in
    RequestHeadTarget.run(fuzzInput(start, count))
    return 0
}
