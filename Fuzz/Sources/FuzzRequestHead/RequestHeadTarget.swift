import FuzzSupport
import Logging
import NIOEmbedded
import NIOHTTP1

@testable import SSEGateway

/// A request head through `RequestRouter.route`, as HTTP/1 and HTTP/2 hand it over: the target's path and
/// query (percent-decoding, template matching, `?event=`, `lastEventId`, `/multi?feed=`, composite ids) and
/// the headers it reads. Never traps, and what it decides is consistent: a stream's feed key is the canonical
/// path of the same feed (it looks up to itself with the same template values), a multi stream names distinct
/// feeds within `multi.max_feeds` and a resume id with one id per feed.
///
/// Input: a flags byte (method in bits 0-1, HTTP/1.0 in bit 2, a listener in poll mode in bit 3, add
/// `Host: gateway` in bit 4), then text: the request target on the first line, `Name: value` headers after.
public enum RequestHeadTarget {
    static let yaml = """
        feeds:
          - name: prices
            path: /prices
            upstream: { url: "http://127.0.0.1:1/prices" }
            cors: { allow_origins: ["https://app.example.com", "https://*.example.com"], allow_credentials: true }
            compression: true
          - name: news
            path: /news
            upstream: { url: "http://127.0.0.1:1/news" }
            delivery: poll
          - name: lobby
            path: /rooms/lobby
            upstream: { url: "http://127.0.0.1:1/lobby" }
          - name: rooms
            path: /rooms/{room}
            upstream: { url: "http://127.0.0.1:1/rooms/{room}" }
            cors: { allow_origins: ["*"] }
          - name: boards
            path: /orgs/{org}/boards/{board}
            upstream: { url: "http://127.0.0.1:1/o/{org}/b/{board}" }
        """

    /// Built once: a router for a listener that streams and one for a listener in poll mode.
    static let routers: (stream: RequestRouter, poll: RequestRouter) = {
        let config: GatewayConfig
        do {
            config = try ConfigLoader.parse(
                yaml: Self.yaml,
                file: "fuzz.yaml",
                baseDirectory: "/",
                environment: [:],
                tlsCheck: TLSFileCheck(listener: { _ in }, upstream: { _ in })
            )
        } catch {
            fuzzFailure("the target's own config: \(error)")
        }
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        let registry = FeedRegistry(feeds: config.feeds, group: EmbeddedEventLoop(), idPrefix: "f-", logger: logger)
        var limits = config.limits
        limits.multi.maxFeeds = 3
        return (
            RequestRouter(registry: registry, listenerDelivery: nil, limits: limits),
            RequestRouter(registry: registry, listenerDelivery: .poll, limits: limits)
        )
    }()

    static let methods: [HTTPMethod] = [.GET, .HEAD, .OPTIONS, .POST]

    public static func run(_ input: [UInt8]) {
        guard let flags = input.first else { return }
        let text = String(decoding: input.dropFirst(), as: UTF8.self)
        var lines = text.split(separator: "\n", maxSplits: 32, omittingEmptySubsequences: false)
        let uri = String(lines.removeFirst())
        var head = HTTPRequestHead(
            version: flags & 0b100 != 0 ? .http1_0 : .http1_1,
            method: Self.methods[Int(flags & 0b11)],
            uri: uri
        )
        if flags & 0b1_0000 != 0 {
            head.headers.add(name: "Host", value: "gateway")
        }
        for line in lines.prefix(32) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon]
            // Only names a client can send: llhttp and HTTP/2's header validation refuse any other before the
            // router sees it (and `HTTPHeaders.add` traps on a non-ASCII name).
            guard !name.isEmpty, name.utf8.allSatisfy(Self.isTokenByte) else { continue }
            head.headers.add(name: String(name), value: String(line[line.index(after: colon)...].drop { $0 == " " }))
        }
        let router = flags & 0b1000 != 0 ? Self.routers.poll : Self.routers.stream

        switch router.route(head) {
        case .stream(let request):
            Self.checkCanonical(request.target, router: router, uri: uri)
        case .multi(let request):
            let keys = request.members.map(\.target.key)
            guard !keys.isEmpty, keys.count <= router.limits.multi.maxFeeds, Set(keys).count == keys.count else {
                fuzzFailure("multi request for \(keys) from \(String(reflecting: uri))")
            }
            for member in request.members {
                Self.checkCanonical(member.target, router: router, uri: uri)
            }
            if let resume = request.resume, resume.ids.count != keys.count {
                fuzzFailure("resume id with \(resume.ids.count) ids for \(keys.count) feeds")
            }
        case .respond(let response, _, _):
            guard [200, 204, 400, 404, 405, 501, 503].contains(response.status.code) else {
                fuzzFailure("\(response.status) for \(String(reflecting: uri))")
            }
        }
    }

    /// RFC 9110 `tchar`: the bytes a header field name is made of.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// A feed key is the canonical spelling of its path: it routes to the same feed and template values.
    static func checkCanonical(_ target: FeedRegistry.Target, router: RequestRouter, uri: String) {
        guard let again = router.registry.lookup(path: Substring(target.key)) else {
            fuzzFailure("the feed key \(String(reflecting: target.key)) of \(String(reflecting: uri)) names no feed")
        }
        let values = target.values.mapValues { Array($0.utf8) }
        guard again.key == target.key, again.definition.name == target.definition.name,
            again.values.mapValues({ Array($0.utf8) }) == values
        else {
            fuzzFailure(
                "\(String(reflecting: uri)) routes to \(target.key) \(target.values), which routes to \(again.key) "
                    + "\(again.values)"
            )
        }
    }
}
