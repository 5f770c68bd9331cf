import AsyncHTTPClient
import NIOCore

/// One forward-auth backend as configured: its authorizer and the HTTP client only it uses, with a pool of
/// `max_concurrent` connections (a client shared with other backends would cap or starve its calls), on
/// AsyncHTTPClient's singleton event loops for the reason `AccessControl.httpClient` gives.
final class ForwardBackend: Sendable {
    let url: UpstreamURL
    let config: ForwardAuthConfig
    let authorizer: ForwardAuthorizer
    private let client: HTTPClient

    init(url: UpstreamURL, config: ForwardAuthConfig) {
        self.url = url
        self.config = config
        self.client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: ForwardAuthorizer.clientConfiguration(
                connections: config.maxConcurrent,
                connectTimeout: min(config.timeout, .seconds(1))
            )
        )
        self.authorizer = ForwardAuthorizer(url: url, config: config, httpClient: self.client)
    }

    func shutdown() async {
        try? await self.client.shutdown()
    }
}
