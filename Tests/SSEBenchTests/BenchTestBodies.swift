import CompressNIO
import Foundation
import NIOCore

/// Bodies the bench tests feed the load tool: SSE events in its `{"seq":…,"ts":…}` shape, and gzip.
enum BenchTestBodies {
    /// SSE events `seqs`, each sent now (`"ts":` in µs since the epoch).
    static func events(_ seqs: ClosedRange<Int>, padding: Int = 0) -> String {
        let now = Int64(Date().timeIntervalSince1970 * 1e6)
        let pad = padding > 0 ? ",\"pad\":\"\(String(repeating: "x", count: padding))\"" : ""
        return seqs.map { "data: {\"seq\":\($0),\"ts\":\(now)\(pad)}\n\n" }.joined()
    }

    static func gzip(_ text: String) throws -> ByteBuffer {
        var plain = ByteBuffer(string: text)
        return try plain.compress(with: .gzip)
    }
}
