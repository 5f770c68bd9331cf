/// Rewrites the query of a request target for display, one `name=value` pair at a time: the one place
/// the gateway takes a target's query apart for logs and status pages (upstream URLs, clients' request
/// targets). The path and the pairs' order and separators stay as they were.
enum QueryRedaction {
    /// `target` with each pair of its query replaced by what `rewrite` returns for it; `rewrite` gets the
    /// whole pair, its name, and its value (nil for a pair without `=`).
    static func redacting(
        _ target: String,
        _ rewrite: (_ pair: Substring, _ name: Substring, _ value: Substring?) -> String
    ) -> String {
        guard let mark = target.firstIndex(of: "?") else { return target }
        let query = target[target.index(after: mark)...]
        let pairs = query.split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
            guard let equals = pair.firstIndex(of: "=") else { return rewrite(pair, pair, nil) }
            return rewrite(pair, pair[..<equals], pair[pair.index(after: equals)...])
        }
        return target[...mark] + pairs.joined(separator: "&")
    }
}
