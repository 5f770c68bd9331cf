import CZlib
import Foundation
import NIOCore

/// A transport that gzips a client's stream in front of another transport, with no deflate state of its
/// own: what it writes is fragments (`GzipFragment`), each standing alone and ending on a byte boundary,
/// so that every event can be decoded the moment its fragment arrives.
///
/// With `sharesFragments`, its framing is `.gzipChunked` or `.gzipRaw`: the fan-out compresses each batch
/// once per feed and loop and hands every gzip client the same fragment, which this transport opens and
/// writes as it is (the plain path shares its chunk the same way). Bytes of this client alone (the
/// prelude, a drain's `retry:`, notices) and, without `sharesFragments` (a multi-feed stream, whose ids
/// differ per client), everything, wait uncompressed until the next flush or shared fragment and then
/// become one fragment of their own, made by the loop's `FragmentDeflater`. The header goes before the
/// first fragment; `finish` writes the final block and a trailer for exactly the fragments sent.
final class GzipTransport: StreamTransport {
    private let inner: StreamTransport
    private let deflater: FragmentDeflater
    let framing: StreamFraming
    private var member = GzipMember()
    private var headerWritten = false
    /// This client's own bytes since its last fragment, uncompressed; nil when there are none.
    private var pending: ByteBuffer?

    init(wrapping inner: StreamTransport, deflater: FragmentDeflater, sharesFragments: Bool = false) {
        self.inner = inner
        self.deflater = deflater
        if sharesFragments {
            self.framing = inner.framing == .chunked ? .gzipChunked : .gzipRaw
        } else {
            self.framing = .raw
        }
    }

    /// True when `Accept-Encoding` allows gzip (RFC 9110 §12.5.3: `gzip`, `x-gzip` or `*`, with q > 0).
    static func accepts(_ acceptEncoding: [String]) -> Bool {
        var gzip: Double?
        var wildcard: Double?
        for field in acceptEncoding {
            for item in field.split(separator: ",") {
                let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
                guard let coding = parts.first?.lowercased() else { continue }
                var quality = 1.0
                for parameter in parts.dropFirst() where parameter.lowercased().hasPrefix("q=") {
                    quality = Double(parameter.dropFirst(2)) ?? 0
                }
                switch coding {
                case "gzip", "x-gzip": gzip = max(gzip ?? 0, quality)
                case "*": wildcard = quality
                default: break
                }
            }
        }
        return (gzip ?? wildcard ?? 0) > 0
    }

    var isWritable: Bool { self.inner.isWritable }
    var bytesWritten: Int { self.inner.bytesWritten }
    func heldSince() -> NIODeadline? { self.inner.heldSince() }

    func writeHead(_ head: ResponseHead) {
        var head = head
        head.headers.append(("Content-Encoding", "gzip"))
        self.inner.writeHead(head)
    }

    /// A shared fragment (`sharesFragments`), or this client's own bytes (without it).
    func writeShared(_ bytes: ByteBuffer) {
        switch self.framing {
        case .gzipChunked, .gzipRaw:
            self.handOnOwnBytes(headerOnly: true)
            let fragment = GzipFragment.open(bytes)
            self.member.append(crc: fragment.crc, length: fragment.length, combine: fragment.combine)
            self.inner.writeShared(fragment.wire)
        case .chunked, .raw:
            self.writePayload(bytes)
        }
    }

    func writePayload(_ bytes: ByteBuffer) {
        guard bytes.readableBytes > 0 else { return }
        if self.pending == nil {
            self.pending = bytes
        } else {
            self.pending!.writeImmutableBuffer(bytes)
        }
    }

    func flush() {
        self.handOnOwnBytes(headerOnly: false)
        self.inner.flush()
    }

    func abort() {
        self.pending = nil
        self.inner.abort()
    }

    func finish() {
        self.handOnOwnBytes(headerOnly: true)
        self.inner.writePayload(self.member.end())
        self.inner.finish()
    }

    func respond(_ head: ResponseHead, body: String) {
        self.inner.respond(head, body: body)
    }

    /// Hands on what this client wrote itself as one fragment, behind the gzip header the first time;
    /// with `headerOnly`, the header goes out even when there is nothing else (a shared fragment or the
    /// end follows).
    private func handOnOwnBytes(headerOnly: Bool) {
        let own = self.pending
        guard own != nil || (headerOnly && !self.headerWritten) else { return }
        self.pending = nil
        let ownLength = own?.readableBytes ?? 0
        var buffer = ByteBufferAllocator().buffer(
            capacity: GzipMember.header.count + (ownLength > 0 ? self.deflater.bound(ownLength) : 0)
        )
        if !self.headerWritten {
            self.headerWritten = true
            buffer.writeBytes(GzipMember.header)
        }
        if let own {
            let (crc, length) = self.deflater.fragment(of: CollectionOfOne(own), into: &buffer)
            self.member.append(
                crc: crc,
                length: UInt32(truncatingIfNeeded: length),
                combine: CZlib_crc32_combine_gen(length)
            )
        }
        self.inner.writePayload(buffer)
    }
}
