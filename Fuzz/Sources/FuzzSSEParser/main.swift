import FuzzSupport

runLibFuzzer { start, count in
    SSEParserTarget.run(fuzzInput(start, count))
    return 0
}
