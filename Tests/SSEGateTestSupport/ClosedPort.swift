import NIOCore
import NIOPosix

/// A port nothing listens on, for connect errors: bind port 0, note the port, close. (Nothing binds it
/// again; a test that needs a listener binds port 0 itself.)
func closedPort() async throws -> Int {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress!.port!
    try await channel.close()
    try await group.shutdownGracefully()
    return port
}
