import NIOHTTP1

/// The client-side hops a request's forwarding headers list, left (the original client) to right (the
/// proxy nearest the gateway): the `for=` of each element of RFC 7239 `Forwarded` when the request has
/// one, else the entries of `X-Forwarded-For`. An entry that names no address (`unknown`, an obfuscated
/// `_hidden`, garbage) is nil: the walk from the right stops there.
enum ForwardedHops {
    static func parse(_ headers: HTTPHeaders) -> [IPAddress?] {
        let forwarded = headers["Forwarded"]
        if !forwarded.isEmpty {
            return forwarded.flatMap { Self.forwardedElements($0) }.map { element in
                Self.forwardedFor(element).flatMap(Self.node)
            }
        }
        return headers["X-Forwarded-For"].flatMap { $0.split(separator: ",") }.map {
            Self.node($0.trimmingSpaces)
        }
    }

    /// The elements of one `Forwarded` field value: split at commas outside quoted strings.
    private static func forwardedElements(_ value: String) -> [Substring] {
        Self.split(Substring(value), at: ",")
    }

    /// The `for=` parameter of one element (`for=192.0.2.60;proto=http;by=203.0.113.43`), unquoted.
    private static func forwardedFor(_ element: Substring) -> Substring? {
        for pair in Self.split(element, at: ";") {
            let pair = pair.trimmingSpaces
            guard let equals = pair.firstIndex(of: "=") else { continue }
            guard pair[..<equals].lowercased() == "for" else { continue }
            var value = pair[pair.index(after: equals)...]
            if value.first == "\"" {
                guard value.count >= 2, value.last == "\"" else { return nil }
                value = value.dropFirst().dropLast()
                // A quoted-pair (`\"`) has no business in an address: leave it to fail as one.
            }
            return value
        }
        return nil
    }

    /// A node (RFC 7239 §6): `192.0.2.43`, `192.0.2.43:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`; also
    /// a bare `2001:db8::1`, as `X-Forwarded-For` writes IPv6.
    static func node(_ text: Substring) -> IPAddress? {
        if text.first == "[" {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let rest = text[text.index(after: close)...]
            guard rest.isEmpty || (rest.first == ":" && Self.isPort(rest.dropFirst())) else { return nil }
            return IPAddress(text[text.index(after: text.startIndex)..<close])
        }
        if let address = IPAddress(text) { return address }
        // IPv4 with a port: exactly one colon.
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, Self.isPort(parts[1]), let address = IPAddress(parts[0]), address.bytes.count == 4
        else { return nil }
        return address
    }

    private static func isPort(_ text: Substring) -> Bool {
        !text.isEmpty && text.count <= 5 && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    /// Splits at `separator` outside double-quoted strings (with `\` escapes inside them).
    private static func split(_ text: Substring, at separator: Character) -> [Substring] {
        var parts: [Substring] = []
        var start = text.startIndex
        var index = text.startIndex
        var quoted = false
        var escaped = false
        while index < text.endIndex {
            let character = text[index]
            if escaped {
                escaped = false
            } else if quoted && character == "\\" {
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
            } else if !quoted && character == separator {
                parts.append(text[start..<index])
                start = text.index(after: index)
            }
            index = text.index(after: index)
        }
        parts.append(text[start...])
        return parts.map(\.trimmingSpaces)
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (optional whitespace, RFC 9110 §5.6.3).
    fileprivate var trimmingSpaces: Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}
