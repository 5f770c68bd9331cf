import CompressNIO
import Foundation
import NIOCore
import SSE
import XCTest

@testable import SSEGateTestSupport
@testable import SSEGateway

/// The fragments every gzip client shares (`GzipFragment`, `FragmentDeflater`, `GzipMember`), as values:
/// fragments made by separate deflate states, in any selection, with the header, the final block and a
/// combined CRC, make a gzip member that zlib and Python's gzip module decode byte for byte; and each
/// fragment decodes completely as soon as it arrives.
final class GzipFragmentTests: XCTestCase {
    func testFragmentsOfSeparateStatesMakeOneMemberThatZlibAndPythonDecode() throws {
        var generator = SeededGenerator(seed: 13)
        var inputs: [ByteBuffer] = []
        var fragments: [ByteBuffer] = []
        // Separate deflaters, as separate event loops have: no fragment may depend on another's state.
        let deflaters = [FragmentDeflater(), FragmentDeflater()]
        for index in 0..<40 {
            let events = (0..<generator.shape()).map { number in
                ByteBuffer(
                    string:
                        "id: \(index).\(number)\ndata: \(generator.payload(bytes: generator.logUniform(1...9000)))\n\n"
                )
            }
            if index % 7 == 3 {
                // A client's own bytes as stored blocks (a keepalive, a notice), now and then over 64 KiB.
                let own = ByteBuffer(string: ": note \(generator.payload(bytes: index == 10 ? 70_000 : 30))\n\n")
                inputs.append(own)
                fragments.append(GzipFragment.stored(own, chunked: false))
            }
            var joined = ByteBuffer()
            for event in events { joined.writeImmutableBuffer(event) }
            inputs.append(joined)
            fragments.append(GzipFragment.deflated(events, chunked: false, deflater: deflaters[index % 2]))
        }
        let member = Self.member(of: fragments)
        var expected = ByteBuffer()
        for input in inputs { expected.writeImmutableBuffer(input) }

        var compressed = member
        let inflated = try ZlibDecompressor(algorithm: .gzip).inflateAll(&compressed)
        XCTAssertEqual(inflated.readableBytes, expected.readableBytes)
        XCTAssertTrue(inflated == expected, "zlib decodes the member byte for byte (and checks its CRC)")

        let python = try Self.gunzipWithPython(member)
        XCTAssertEqual(python.count, expected.readableBytes)
        XCTAssertTrue(python == Data(expected.readableBytesView), "Python's gzip module decodes it byte for byte")
    }

    /// The property the burst tests check end to end, here on random selections: clients joining at any
    /// batch, skipping some shared fragments and getting fragments of their own, decode everything each
    /// fragment carries the moment it arrives, and their member ends with a trailer that checks out.
    func testEveryClientDecodesEachFragmentOnArrivalAndItsTrailerChecksOut() throws {
        var generator = SeededGenerator(seed: 29)
        let deflater = FragmentDeflater()
        struct Client {
            var inflater: ZlibDecompressor
            var stream = ByteBuffer()
            var member = GzipMember()
            var sent = ByteBuffer()
            var decoded = ByteBuffer()
        }
        var clients: [Client] = []
        for batch in 0..<120 {
            // Random joins: each new client starts its member with the header.
            for _ in 0..<Int.random(in: 0...2, using: &generator) where clients.count < 12 {
                var client = Client(inflater: try ZlibDecompressor(algorithm: .gzip))
                client.stream.writeBytes(GzipMember.header)
                clients.append(client)
            }
            let events = (0..<generator.shape()).map { number in
                ByteBuffer(
                    string:
                        "id: \(batch).\(number)\ndata: \(generator.payload(bytes: generator.logUniform(1...3000)))\n\n"
                )
            }
            let shared = GzipFragment.deflated(events, chunked: false, deflater: deflater)
            for index in clients.indices {
                var pieces: [(fragment: ByteBuffer, input: [ByteBuffer])] = []
                switch Int.random(in: 0..<6, using: &generator) {
                case 0:
                    // Its own fragment: part of the batch (a filter, or a replay that covered the start).
                    let part = events.filter { _ in Bool.random(using: &generator) }
                    if !part.isEmpty {
                        pieces.append((GzipFragment.deflated(part, chunked: false, deflater: deflater), part))
                    }
                case 1:
                    // A stored notice of its own before the shared fragment.
                    let notice = ByteBuffer(string: ": keepalive \(index)\n\n")
                    pieces.append((GzipFragment.stored(notice, chunked: false), [notice]))
                    pieces.append((shared, events))
                default:
                    pieces.append((shared, events))
                }
                for (fragment, input) in pieces {
                    let opened = GzipFragment.open(fragment)
                    clients[index].member.append(crc: opened.crc, length: opened.length, combine: opened.combine)
                    clients[index].stream.writeImmutableBuffer(opened.wire)
                    for buffer in input { clients[index].sent.writeImmutableBuffer(buffer) }
                    var arrived = clients[index].stream
                    clients[index].stream.clear()
                    clients[index].decoded.writeImmutableBuffer(try clients[index].inflater.inflateAll(&arrived))
                    XCTAssertEqual(
                        clients[index].decoded.readableBytes,
                        clients[index].sent.readableBytes,
                        "client \(index), batch \(batch): all decodable on arrival"
                    )
                }
            }
        }
        for index in clients.indices {
            var end = clients[index].member.end()
            // Past the final block and trailer, a strict decoder has checked the CRC and the length.
            XCTAssertNoThrow(try clients[index].inflater.inflateAll(&end), "client \(index)'s trailer")
            XCTAssertTrue(clients[index].decoded == clients[index].sent, "client \(index): byte for byte")
        }
        XCTAssertGreaterThan(clients.count, 3)
    }

    /// A pass over a shard's clients deflates a batch at most once per framing: every gzip client that
    /// takes the whole batch is handed the same storage.
    func testABatchIsDeflatedOncePerFramingAndShared() throws {
        let deflater = FragmentDeflater()
        let events = (0..<3).map { sequence in
            EncodedEvent(
                sequence: Int64(sequence + 1),
                event: ServerSentEvent(id: "\(sequence)", data: "tick \(sequence)"),
                receivedAt: .now(),
                allocator: ByteBufferAllocator()
            )
        }
        var fragments = BatchFragments()
        XCTAssertEqual(
            fragments.whole(events, chunked: false, deflater: deflater).count,
            1,
            "a short batch: one fragment"
        )
        let first = fragments.whole(events, chunked: false, deflater: deflater)[0].fragment
        let second = fragments.whole(events, chunked: false, deflater: deflater)[0].fragment
        let chunked = fragments.whole(events, chunked: true, deflater: deflater)[0].fragment
        let storage = { (buffer: ByteBuffer) in buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } }
        XCTAssertEqual(storage(first), storage(second), "one deflate, one buffer for every client")
        XCTAssertNotEqual(storage(first), storage(chunked))
        XCTAssertEqual(
            fragments.whole(events, chunked: true, deflater: deflater)[0].fragment.readableBytes,
            chunked.readableBytes
        )
    }

    /// The chunked form frames the same deflate bytes as one HTTP/1.1 chunk, after the same figures.
    func testTheChunkedFormIsOneChunkOfTheSameBytes() throws {
        let deflater = FragmentDeflater()
        let events = (0..<30).map { ByteBuffer(string: "id: \($0)\ndata: {\"price\":\($0 * 7)}\n\n") }
        let raw = GzipFragment.open(GzipFragment.deflated(events, chunked: false, deflater: deflater))
        let chunked = GzipFragment.open(GzipFragment.deflated(events, chunked: true, deflater: deflater))
        XCTAssertEqual(chunked.crc, raw.crc)
        XCTAssertEqual(chunked.length, raw.length)
        XCTAssertEqual(
            String(buffer: chunked.wire),
            String(raw.wire.readableBytes, radix: 16) + "\r\n" + String(buffer: raw.wire) + "\r\n"
        )
        let stored = GzipFragment.open(GzipFragment.stored(ByteBuffer(string: ": keepalive\n\n"), chunked: true))
        XCTAssertEqual(stored.wire.getString(at: stored.wire.readerIndex, length: 4), "12\r\n", "5 + 13 bytes")
    }

    /// The ratio and the cost of one shared fragment on the benchmark's ticker events (`ssegate origin
    /// --payload 200`: a JSON object with a 200-byte padding), one event per batch, beside what one deflate
    /// stream with history across batches (the old per-client state) makes of the same events. Printed for
    /// docs/performance.md; the bounds only catch a broken deflater.
    func testTickerEventsCompressAndCostLittlePerBatch() throws {
        let deflater = FragmentDeflater()
        let history = try ZlibCompressor(algorithm: .deflate, configuration: GzipFragmentTests.historyConfiguration)
        let padding = String(repeating: "x", count: 200)
        var input = 0
        var output = 0
        var historyOutput = 0
        let rounds = 2000
        var elapsed: Int64 = 0
        for sequence in 0..<rounds {
            let number = 1_000_000 + sequence
            let event = ByteBuffer(
                string:
                    "id: \(number)\ndata: {\"seq\":\(number),\"ts\":\(1_764_000_000_000_000 + sequence * 100_000),\"pad\":\"\(padding)\"}\n\n"
            )
            let start = NIODeadline.now()
            let fragment = GzipFragment.deflated(CollectionOfOne(event), chunked: false, deflater: deflater)
            elapsed += (NIODeadline.now() - start).nanoseconds
            input += event.readableBytes
            output += GzipFragment.open(fragment).wire.readableBytes
            var source = event
            var sink = ByteBufferAllocator().buffer(capacity: 1024)
            try? history.deflate(from: &source, to: &sink, flush: .sync)
            historyOutput += sink.readableBytes
        }
        let ratio = Double(output) / Double(input)
        let historyRatio = Double(historyOutput) / Double(input)
        print(
            "ticker fragments: \(input / rounds) B in, \(output / rounds) B out (ratio \(String(format: "%.3f", ratio))); "
                + "one stream with history: \(historyOutput / rounds) B (ratio \(String(format: "%.3f", historyRatio))); "
                + "\(String(format: "%.2f", Double(elapsed) / Double(rounds) / 1000)) µs per fragment"
        )
        XCTAssertLessThan(ratio, 0.5)
    }

    /// The old per-client deflate state: a 16 KiB window, memory level 5.
    static let historyConfiguration = ZlibConfiguration(windowSize: 12, compressionLevel: 6, memoryLevel: 5)

    // MARK: Helpers

    static func member(of fragments: [ByteBuffer]) -> ByteBuffer {
        var member = GzipMember()
        var buffer = ByteBuffer(bytes: GzipMember.header)
        for fragment in fragments {
            let opened = GzipFragment.open(fragment)
            member.append(crc: opened.crc, length: opened.length, combine: opened.combine)
            buffer.writeImmutableBuffer(opened.wire)
        }
        buffer.writeImmutableBuffer(member.end())
        return buffer
    }

    /// Decodes `member` with Python's gzip module (which checks the CRC and the length).
    static func gunzipWithPython(_ member: ByteBuffer) throws -> Data {
        let directory = FileManager.default.temporaryDirectory
        let input = directory.appendingPathComponent("ssegate-fragments-\(UUID().uuidString).gz")
        let output = directory.appendingPathComponent("ssegate-fragments-\(UUID().uuidString).out")
        defer {
            try? FileManager.default.removeItem(at: input)
            try? FileManager.default.removeItem(at: output)
        }
        try Data(member.readableBytesView).write(to: input)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            "import gzip,sys; open(sys.argv[2],'wb').write(gzip.open(sys.argv[1]).read())",
            input.path, output.path,
        ]
        try process.run()
        process.waitUntilExit()
        if process.terminationStatus == 127 { throw XCTSkip("no python3 here") }
        XCTAssertEqual(process.terminationStatus, 0, "python3 could not decode the member")
        return try Data(contentsOf: output)
    }
}
