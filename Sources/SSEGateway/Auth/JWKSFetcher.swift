import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1

/// One GET of a JWKS URL with AsyncHTTPClient (which also does `https://` with the system's trust roots):
/// `Accept: application/json`, Basic credentials when the URL has `user:password@`, a 2xx status only, a body of
/// at most `maxBytes`, and the whole exchange (connect, head and body) bounded by `timeout`.
struct JWKSFetcher: Sendable {
    static let defaultTimeout: TimeAmount = .seconds(5)
    /// Real key sets are a few kilobytes; the limit keeps a wrong URL from filling memory.
    static let defaultMaxBytes = 1 << 20

    let url: UpstreamURL
    let client: HTTPClient
    var timeout: TimeAmount = Self.defaultTimeout
    var maxBytes: Int = Self.defaultMaxBytes

    /// The response body of a successful GET.
    func fetch() async throws(JWKSFetchError) -> ByteBuffer {
        let request = self.request()
        let timeout = self.timeout
        do {
            // AsyncHTTPClient's deadline covers the response head, not a body still arriving: race the whole
            // exchange against a timer; the loser is cancelled (which cancels the request).
            return try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
                group.addTask { try await self.get(request, deadline: .now() + timeout) }
                group.addTask {
                    try await Task.sleep(nanoseconds: UInt64(max(timeout.nanoseconds, 0)))
                    return nil
                }
                defer { group.cancelAll() }
                guard let body = try await group.next() ?? nil else {
                    throw JWKSFetchError(message: "no answer within \(timeout.nanoseconds / 1_000_000) ms")
                }
                return body
            }
        } catch let error as JWKSFetchError {
            throw error
        } catch is NIOTooManyBytesError {
            throw JWKSFetchError(message: "body larger than \(self.maxBytes) bytes")
        } catch let error as HTTPClientError where error == .deadlineExceeded {
            throw JWKSFetchError(message: "no answer within \(timeout.nanoseconds / 1_000_000) ms")
        } catch {
            throw JWKSFetchError(message: "\(error)")
        }
    }

    private func get(_ request: HTTPClientRequest, deadline: NIODeadline) async throws -> ByteBuffer {
        let response = try await self.client.execute(request, deadline: deadline)
        guard (200..<300).contains(response.status.code) else {
            throw JWKSFetchError(message: "status \(response.status.code)")
        }
        return try await response.body.collect(upTo: self.maxBytes)
    }

    private func request() -> HTTPClientRequest {
        let host = self.url.host.contains(":") ? "[\(self.url.host)]" : self.url.host
        var request = HTTPClientRequest(url: "\(self.url.scheme)://\(host):\(self.url.port)\(self.url.target)")
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        if let authorization = self.url.basicAuthorization {
            request.headers.add(name: "Authorization", value: authorization)
        }
        return request
    }
}

/// Why a fetch of the JWKS URL gave no document: unreachable, timed out, a non-2xx status, too large.
struct JWKSFetchError: Error, Sendable, Hashable, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}
