import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// One question to the forward-auth backend, as nginx `auth_request` asks it: `GET <url>` with the client's
/// `Cookie` and `Authorization`, `X-Original-URI` (the path only: a query may carry `access_token`, which is
/// never forwarded), `X-Original-Method: GET` and `X-Forwarded-For`. Whatever goes wrong is an outcome, not
/// an error, and nothing that goes wrong is an allow.
struct ForwardAuthCall: Sendable {
    /// The backend URL as AsyncHTTPClient takes it.
    let url: String
    /// The whole exchange, connect to last body byte.
    let timeout: TimeAmount
    /// The response header that narrows an allow to some feeds.
    let grantHeader: String
    let client: HTTPClient

    /// A body is read (so the pooled connection can be reused) up to this; past it the connection is dropped.
    static let maxDrainedBodyBytes = 16 * 1024

    init(url: UpstreamURL, timeout: TimeAmount, grantHeader: String, client: HTTPClient) {
        // `user:password@` is left out: the client's own `Authorization` is what the backend must see.
        self.url = "\(url.scheme)://\(url.hostHeader)\(url.target)"
        self.timeout = timeout
        self.grantHeader = grantHeader
        self.client = client
    }

    /// The request sent for `request` (separate from the I/O so a test can read it).
    func backendRequest(for request: AuthRequest) -> HTTPClientRequest {
        var backend = HTTPClientRequest(url: self.url)
        backend.method = .GET
        // HTTP/2 clients may split cookies over several fields; an HTTP/1.1 request carries one (RFC 9113 §8.2.3).
        let cookies = request.headers["cookie"]
        if !cookies.isEmpty { backend.headers.add(name: "Cookie", value: cookies.joined(separator: "; ")) }
        for value in request.headers["authorization"] { backend.headers.add(name: "Authorization", value: value) }
        backend.headers.add(name: "X-Original-URI", value: request.path)
        backend.headers.add(name: "X-Original-Method", value: "GET")
        if let address = request.clientAddress { backend.headers.add(name: "X-Forwarded-For", value: address) }
        return backend
    }

    /// Asks the backend; returns within `timeout` (plus scheduling), whatever the backend does.
    func perform(_ request: AuthRequest) async -> ForwardAuthOutcome {
        // AsyncHTTPClient's deadline covers the wait for a connection and the response head, not the body, so
        // the whole exchange races a timer; the loser is cancelled (which closes a stalled connection).
        await withTaskGroup(of: ForwardAuthOutcome?.self) { group in
            group.addTask { await self.exchange(request) }
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(max(self.timeout.nanoseconds, 0)))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? .timedOut
        }
    }

    private func exchange(_ request: AuthRequest) async -> ForwardAuthOutcome {
        let response: HTTPClientResponse
        do {
            response = try await self.client.execute(self.backendRequest(for: request), deadline: .now() + self.timeout)
        } catch let error as HTTPClientError where error == .deadlineExceeded {
            return .timedOut
        } catch {
            return .failed
        }
        let status = Int(response.status.code)
        let grantValues = response.headers[self.grantHeader]
        // A client configured to follow redirects would show the login page's 200 here: never an allow.
        let redirected = response.history.count > 1
        await Self.drain(response.body)
        if redirected { return .badStatus }
        guard let answer = ForwardAuthAnswer(status: status, grantValues: grantValues) else { return .badStatus }
        return .answer(answer)
    }

    /// Reads and discards the body so the connection goes back to the pool; a large or broken body only costs
    /// the connection (the status was the answer).
    private static func drain(_ body: HTTPClientResponse.Body) async {
        var seen = 0
        do {
            for try await chunk in body {
                seen += chunk.readableBytes
                if seen > Self.maxDrainedBodyBytes { return }
            }
        } catch {}
    }
}
