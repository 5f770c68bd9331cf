import Foundation
import NIOCore
import NIOPosix
import XCTest

@testable import SSEGateTestSupport

/// Debian's nginx in front of the in-process gateway, buffering responses the way corporate proxies do:
/// `proxy_buffering on` and `X-Accel-Buffering` ignored, so a streaming response reaches the client only
/// when nginx's buffers fill or the response ends.
///
/// It runs as the test's user with everything (config, pid, error log, temp dirs) in its own scratch
/// directory, as a single process (`master_process off`), so killing its PID at `stop()` leaves nothing.
/// Each route sends a path prefix to a port on 127.0.0.1 (the gateway, the page server).
final class BufferingNginx: @unchecked Sendable {
    /// A `location` prefix and the 127.0.0.1 port it is proxied to.
    struct Route {
        var prefix: String
        var port: Int
        /// `proxy_http_version`. nginx's default, 1.0, is what makes it hold a stream: the response
        /// cannot be chunked, and nginx passes on a close-delimited body only in whole buffers. Over 1.1
        /// it parses the gateway's chunks and passes on each complete one at once, buffering on or not.
        var upstreamHTTPVersion = "1.0"
    }

    let port: Int
    let directory: URL
    // Written once in `start` before the value is shared, then only read; `stop` runs at teardown.
    private let process: Process

    private init(port: Int, directory: URL, process: Process) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    /// Starts nginx on a free port of 127.0.0.1 and waits until it accepts connections. Skips the test
    /// (one line naming the package) where nginx is missing, or fails it under `SSEGATE_REQUIRE_TOOLS=1`.
    static func start(
        routes: [Route],
        group: EventLoopGroup,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> BufferingNginx {
        let nginx = try ExternalTool.nginx.require(file: file, line: line)
        // The free port is found by binding and closing it; another process may take it before nginx
        // binds, so a start whose nginx exits at once is tried again on another port.
        var lastLog = ""
        for _ in 0..<3 {
            let port = try await Self.freePort(group: group)
            let directory = try TestScratch.directory("nginx")
            try Self.configuration(port: port, routes: routes, directory: directory)
                .write(to: directory.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: nginx)
            process.arguments = [
                "-p", directory.path, "-c", "nginx.conf", "-e", directory.appendingPathComponent("error.log").path,
                "-g", "daemon off;",
            ]
            let output = directory.appendingPathComponent("output.log")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            let handle = try FileHandle(forWritingTo: output)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            let proxy = BufferingNginx(port: port, directory: directory, process: process)
            let accepting = try await waitUntil(timeout: .seconds(10), interval: .milliseconds(20)) {
                guard process.isRunning else { return true }
                return await Self.accepts(port: port, group: group)
            }
            if accepting && process.isRunning { return proxy }
            lastLog = proxy.logs()
            proxy.stop()
        }
        XCTFail("nginx did not start:\n\(lastLog)", file: file, line: line)
        throw TestTimeout(message: "nginx did not start")
    }

    /// The whole configuration: one server on `port`, every route buffered with corporate-proxy buffer
    /// sizes (a 4k first buffer, then 8 × 64k) and `X-Accel-Buffering: no` ignored.
    static func configuration(port: Int, routes: [Route], directory: URL) -> String {
        let dir = directory.path
        let locations = routes.map { route in
            """
                    location \(route.prefix) {
                        proxy_pass http://127.0.0.1:\(route.port);
                        proxy_http_version \(route.upstreamHTTPVersion);
                        proxy_set_header Connection "";
                        proxy_buffering on;
                        proxy_ignore_headers X-Accel-Buffering;
                        proxy_buffer_size 4k;
                        proxy_buffers 8 64k;
                        proxy_read_timeout 300s;
                    }
            """
        }.joined(separator: "\n")
        return """
            master_process off;
            pid \(dir)/nginx.pid;
            error_log \(dir)/error.log warn;
            events { worker_connections 256; }
            http {
                access_log off;
                client_body_temp_path \(dir)/client_body_temp;
                proxy_temp_path \(dir)/proxy_temp;
                fastcgi_temp_path \(dir)/fastcgi_temp;
                uwsgi_temp_path \(dir)/uwsgi_temp;
                scgi_temp_path \(dir)/scgi_temp;
                server {
                    listen 127.0.0.1:\(port);
            \(locations)
                }
            }

            """
    }

    /// nginx's error log and output, for a failure message.
    func logs() -> String {
        ["error.log", "output.log"].map { name in
            (try? String(contentsOf: self.directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
        }.joined(separator: "\n")
    }

    /// Kills nginx by its PID (a single process: there are no workers to leave behind).
    func stop() {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
        }
        self.process.waitUntilExit()
    }

    private static func freePort(group: EventLoopGroup) async throws -> Int {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try XCTUnwrap(channel.localAddress?.port)
        try await channel.close()
        return port
    }

    private static func accepts(port: Int, group: EventLoopGroup) async -> Bool {
        guard let channel = try? await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
        else { return false }
        try? await channel.close()
        return true
    }
}
