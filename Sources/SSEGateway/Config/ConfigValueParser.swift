import NIOCore

/// Pure text-to-value parsers for the config's scalar forms: durations, sizes, counts, addresses
/// and `${ENV}` expansion. They know nothing of YAML or positions; `ConfigValue` adds those.
enum ConfigValueParser {
    /// Shown when a duration is rejected, so the user sees every accepted form at once.
    static let durationForm = "a duration such as 250ms, 1.5s, 5m or 1h (a number followed by ms, s, m or h; or 0)"

    /// Shown when a size is rejected.
    static let sizeForm =
        "a size such as 16384, 64KiB or 8MiB (whole bytes, or a whole number followed by KiB, MiB, GiB, KB, MB or GB)"

    // MARK: - Durations

    /// Parses `250ms`, `15s`, `1.5s`, `5m`, `1h` or `0`.
    ///
    /// A bare number other than 0 is rejected on purpose: `15` could mean seconds or milliseconds,
    /// and guessing wrong turns a 15 s timeout into a 15 ms one.
    static func duration(_ text: String) throws(ConfigValueError) -> TimeAmount {
        if text == "0" {
            return .zero
        }
        let numberEnd = text.firstIndex { !(self.isASCIIDigit($0) || $0 == ".") } ?? text.endIndex
        let number = text[..<numberEnd]
        let nanosecondsPerUnit: Int64
        switch text[numberEnd...] {
        case "ms": nanosecondsPerUnit = 1_000_000
        case "s": nanosecondsPerUnit = 1_000_000_000
        case "m": nanosecondsPerUnit = 60 * 1_000_000_000
        case "h": nanosecondsPerUnit = 3600 * 1_000_000_000
        default: throw ConfigValueError(message: "expected \(self.durationForm), got '\(text)'")
        }
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.allSatisfy(self.isASCIIDigit),
            parts.count == 1 || (!parts[1].isEmpty && parts[1].allSatisfy(self.isASCIIDigit))
        else {
            throw ConfigValueError(message: "expected \(self.durationForm), got '\(text)'")
        }
        guard let wholeUnits = Int64(whole) else {
            throw ConfigValueError(message: "duration '\(text)' is too large")
        }
        let (wholeNanoseconds, overflow) = wholeUnits.multipliedReportingOverflow(by: nanosecondsPerUnit)
        guard !overflow else {
            throw ConfigValueError(message: "duration '\(text)' is too large")
        }
        var fractionNanoseconds: Int64 = 0
        if parts.count == 2 {
            // A Double is exact enough here: the fraction is below one unit (≤ 1 h), so the rounding
            // error stays far below a nanosecond for any fraction a person would write.
            let fraction = Double("0." + parts[1]) ?? 0
            fractionNanoseconds = Int64((fraction * Double(nanosecondsPerUnit)).rounded())
        }
        let (total, overflowTotal) = wholeNanoseconds.addingReportingOverflow(fractionNanoseconds)
        guard !overflowTotal else {
            throw ConfigValueError(message: "duration '\(text)' is too large")
        }
        return .nanoseconds(total)
    }

    // MARK: - Percentages

    /// Shown when a percentage is rejected.
    static let percentageForm = "a percentage such as 50% (a number from 0 to 100 followed by %)"

    /// Parses `50%`, `12.5%` or `0%` into a fraction (0.5, 0.125, 0). The `%` is required: a bare `50`
    /// could be read as 50 % or as 50 times.
    static func percentage(_ text: String) throws(ConfigValueError) -> Double {
        guard text.hasSuffix("%") else {
            throw ConfigValueError(message: "expected \(self.percentageForm), got '\(text)'")
        }
        let number = text.dropLast()
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.allSatisfy(self.isASCIIDigit),
            parts.count == 1 || (!parts[1].isEmpty && parts[1].allSatisfy(self.isASCIIDigit)),
            let value = Double(number)
        else {
            throw ConfigValueError(message: "expected \(self.percentageForm), got '\(text)'")
        }
        guard value <= 100 else {
            throw ConfigValueError(message: "must be at most 100%, got '\(text)'")
        }
        return value / 100
    }

    // MARK: - Sizes and counts

    /// Parses plain bytes (`16384`) or a whole number with a unit: `KiB`/`MiB`/`GiB` (1024-based)
    /// or `KB`/`MB`/`GB` (1000-based). Units are case-sensitive so `mb` (millibits?) is not guessed at.
    static func size(_ text: String) throws(ConfigValueError) -> Int {
        let numberEnd = text.firstIndex { !self.isASCIIDigit($0) } ?? text.endIndex
        let number = text[..<numberEnd]
        let multiplier: Int
        switch text[numberEnd...] {
        case "": multiplier = 1
        case "KiB": multiplier = 1 << 10
        case "MiB": multiplier = 1 << 20
        case "GiB": multiplier = 1 << 30
        case "KB": multiplier = 1000
        case "MB": multiplier = 1_000_000
        case "GB": multiplier = 1_000_000_000
        default: throw ConfigValueError(message: "expected \(self.sizeForm), got '\(text)'")
        }
        guard !number.isEmpty else {
            throw ConfigValueError(message: "expected \(self.sizeForm), got '\(text)'")
        }
        guard let count = Int(number) else {
            throw ConfigValueError(message: "size '\(text)' is too large")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: multiplier)
        guard !overflow else {
            throw ConfigValueError(message: "size '\(text)' is too large")
        }
        return bytes
    }

    /// Parses a whole number, optionally negative so that range checks can name the bad value
    /// ("must be at least 1, got -5") instead of calling `-5` "not a number".
    static func integer(_ text: String) throws(ConfigValueError) -> Int {
        let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy(self.isASCIIDigit) else {
            throw ConfigValueError(message: "expected a whole number, got '\(text)'")
        }
        guard let value = Int(text) else {
            throw ConfigValueError(message: "number '\(text)' is too large")
        }
        return value
    }

    /// Formats a byte count the way a user would write it, for "must be at least …" messages.
    static func formatSize(_ bytes: Int) -> String {
        if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20)MiB" }
        if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10)KiB" }
        return "\(bytes) bytes"
    }

    // MARK: - Addresses

    /// Parses `host:port`, `[v6]:port` or `:port` (meaning `0.0.0.0`). IPv6 hosts are stored without brackets;
    /// `HostPort.description` adds them back.
    static func hostPort(_ text: String) throws(ConfigValueError) -> HostPort {
        let form = "expected host:port, [ipv6]:port or :port, got '\(text)'"
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw ConfigValueError(message: "missing ']' after the IPv6 address in '\(text)'")
            }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw ConfigValueError(message: form) }
            portText = rest.dropFirst()
            guard !host.isEmpty else { throw ConfigValueError(message: form) }
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ConfigValueError(message: form) }
            let written = text[..<colon]
            if written.contains(":") {
                throw ConfigValueError(message: "an IPv6 address must be in brackets, as in [::1]:8080; got '\(text)'")
            }
            host = written.isEmpty ? "0.0.0.0" : written
            portText = text[text.index(after: colon)...]
        }
        guard !host.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "[" || $0 == "]" }) else {
            throw ConfigValueError(message: "bad host '\(host)' in '\(text)'")
        }
        guard !portText.isEmpty, portText.allSatisfy(self.isASCIIDigit) else {
            throw ConfigValueError(message: "port must be a number from 1 to 65535, got '\(portText)' in '\(text)'")
        }
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw ConfigValueError(message: "port must be from 1 to 65535, got \(portText) in '\(text)'")
        }
        return HostPort(host: String(host), port: port)
    }

    // MARK: - Environment

    /// Replaces each `${NAME}` with the variable's value. `$${` stands for a literal `${`; any other `$` is kept.
    ///
    /// Values are inserted verbatim and not expanded again, so a secret containing `${` stays intact.
    /// All missing variables of one scalar are named in one error, so the user can export them all at once.
    static func expandEnvironment(_ text: String, _ environment: [String: String]) throws(ConfigValueError) -> String {
        // Nearly every scalar has no `$`; skip the rebuild for those.
        guard text.contains("$") else {
            return text
        }
        var output = ""
        var missing: [String] = []
        var index = text.startIndex
        while index < text.endIndex {
            let rest = text[index...]
            if rest.hasPrefix("$${") {
                output += "${"
                index = text.index(index, offsetBy: 3)
            } else if rest.hasPrefix("${") {
                let nameStart = text.index(index, offsetBy: 2)
                guard let close = text[nameStart...].firstIndex(of: "}") else {
                    throw ConfigValueError(message: "unterminated '${' (write '$${' for a literal '${')")
                }
                let name = String(text[nameStart..<close])
                guard self.isEnvironmentName(name) else {
                    throw ConfigValueError(
                        message: "'${\(name)}' is not a valid environment variable reference: a name is letters, "
                            + "digits and '_' (write '$${' for a literal '${')"
                    )
                }
                if let value = environment[name] {
                    output += value
                } else if !missing.contains(name) {
                    missing.append(name)
                }
                index = text.index(after: close)
            } else {
                output.append(text[index])
                index = text.index(after: index)
            }
        }
        switch missing.count {
        case 0:
            return output
        case 1:
            throw ConfigValueError(message: "environment variable '\(missing[0])' is not set")
        default:
            let names = missing.map { "'\($0)'" }.joined(separator: ", ")
            throw ConfigValueError(message: "environment variables \(names) are not set")
        }
    }

    // MARK: - Suggestions

    /// The candidate closest to `key`, if it is close enough to be a plausible typo.
    ///
    /// Uses optimal-string-alignment distance, so a swapped pair (`keepalvie`) costs 1, and ignores case.
    static func suggestion(for key: String, among candidates: [String]) -> String? {
        let limit = key.count >= 4 ? 2 : 1
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let distance = self.editDistance(key.lowercased(), candidate.lowercased())
            if distance <= limit, distance < (best?.distance ?? Int.max) {
                best = (candidate, distance)
            }
        }
        return best?.candidate
    }

    /// Optimal-string-alignment (restricted Damerau–Levenshtein) distance.
    static func editDistance(_ lhs: String, _ rhs: String) -> Int {
        let a = Array(lhs.unicodeScalars)
        let b = Array(rhs.unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }

    // MARK: - Helpers

    static func isASCIIDigit(_ character: Character) -> Bool {
        character.isASCII && character.isNumber
    }

    /// `[A-Za-z_][A-Za-z0-9_]*`, the names a POSIX shell can export.
    private static func isEnvironmentName(_ name: String) -> Bool {
        func isLetter(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || byte == UInt8(ascii: "_")
        }
        guard let first = name.utf8.first, isLetter(first) else {
            return false
        }
        return name.utf8.allSatisfy { isLetter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }
}
