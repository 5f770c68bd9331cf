import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOPosix
import XCTest

/// An h2c connection driven frame by frame, for what a well-behaved HTTP/2 client never does (e.g. opening
/// more streams than the server's SETTINGS_MAX_CONCURRENT_STREAMS). Sends the client preface and an empty
/// SETTINGS, acknowledges the server's SETTINGS, and records every frame the server sends (RFC 9113 §4.1).
final class H2RawConnection: PolledState, @unchecked Sendable {
    struct Frame {
        var type: UInt8
        var flags: UInt8
        var streamID: UInt32
        var payload: ByteBuffer

        static let data: UInt8 = 0x0, headers: UInt8 = 0x1, rstStream: UInt8 = 0x3, settings: UInt8 = 0x4,
            ping: UInt8 = 0x6, goAway: UInt8 = 0x7,
            windowUpdate: UInt8 = 0x8, continuation: UInt8 = 0x9

        /// The last stream id of a GOAWAY frame.
        var lastStreamID: UInt32? {
            self.type == Self.goAway
                ? self.payload.getInteger(at: self.payload.readerIndex, as: UInt32.self).map { $0 & 0x7FFF_FFFF } : nil
        }

        /// The error code of a RST_STREAM or GOAWAY frame.
        var errorCode: UInt32? {
            switch self.type {
            case Self.rstStream: return self.payload.getInteger(at: self.payload.readerIndex, as: UInt32.self)
            case Self.goAway: return self.payload.getInteger(at: self.payload.readerIndex + 4, as: UInt32.self)
            default: return nil
            }
        }
    }

    private let state = NIOLockedValueBox((frames: [Frame](), closed: false))
    private var channel: Channel!
    private var encoder = HPACKEncoder(allocator: ByteBufferAllocator())

    static func connect(port: Int, group: EventLoopGroup) async throws -> H2RawConnection {
        let connection = H2RawConnection()
        connection.channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(Recorder(connection: connection))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        var preface = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        Self.writeFrame(type: Frame.settings, flags: 0, streamID: 0, payload: ByteBuffer(), into: &preface)
        try await connection.channel.writeAndFlush(preface).get()
        return connection
    }

    var frames: [Frame] { self.state.withLockedValue { $0.frames } }
    var snapshot: [Frame] { self.frames }
    var isClosed: Bool { self.state.withLockedValue { $0.closed } }

    /// HEADERS with END_HEADERS and END_STREAM on a new stream (not flushed).
    func sendHeaders(streamID: UInt32, _ headers: [(String, String)]) {
        var block = ByteBuffer()
        try! self.encoder.encode(headers: HPACKHeaders(headers), to: &block)
        var frame = ByteBuffer()
        Self.writeFrame(type: Frame.headers, flags: 0x4 | 0x1, streamID: streamID, payload: block, into: &frame)
        self.channel.write(frame, promise: nil)
    }

    /// RST_STREAM with CANCEL (not flushed).
    func sendRSTStream(streamID: UInt32, errorCode: UInt32 = 0x8) {
        var payload = ByteBuffer()
        payload.writeInteger(errorCode)
        var frame = ByteBuffer()
        Self.writeFrame(type: Frame.rstStream, flags: 0, streamID: streamID, payload: payload, into: &frame)
        self.channel.write(frame, promise: nil)
    }

    /// `count` WINDOW_UPDATE frames of `increment` bytes each for `streamID` (0: the connection), in one
    /// write (not flushed).
    func sendWindowUpdates(streamID: UInt32, increment: UInt32 = 1, count: Int) {
        var frames = ByteBuffer()
        frames.reserveCapacity(13 * count)
        var payload = ByteBuffer()
        payload.writeInteger(increment & 0x7FFF_FFFF)
        for _ in 0..<count {
            Self.writeFrame(type: Frame.windowUpdate, flags: 0, streamID: streamID, payload: payload, into: &frames)
        }
        self.channel.write(frames, promise: nil)
    }

    /// PING (not flushed): the server's PING ACK shows it has processed everything sent before.
    func sendPing() {
        var frame = ByteBuffer()
        Self.writeFrame(
            type: Frame.ping,
            flags: 0,
            streamID: 0,
            payload: ByteBuffer(bytes: [1, 2, 3, 4, 5, 6, 7, 8]),
            into: &frame
        )
        self.channel.write(frame, promise: nil)
    }

    /// `count` copies of one frame in one write (not flushed): SETTINGS, PING or CONTINUATION floods.
    func sendFrames(type: UInt8, flags: UInt8 = 0, streamID: UInt32 = 0, payload: ByteBuffer = ByteBuffer(), count: Int)
    {
        var frames = ByteBuffer()
        frames.reserveCapacity((9 + payload.readableBytes) * count)
        for _ in 0..<count {
            Self.writeFrame(type: type, flags: flags, streamID: streamID, payload: payload, into: &frames)
        }
        self.channel.write(frames, promise: nil)
    }

    /// HEADERS with END_STREAM but without END_HEADERS (not flushed): CONTINUATION frames must end the block.
    func sendHeadersWithoutEnd(streamID: UInt32, _ headers: [(String, String)]) {
        var block = ByteBuffer()
        try! self.encoder.encode(headers: HPACKHeaders(headers), to: &block)
        var frame = ByteBuffer()
        Self.writeFrame(type: Frame.headers, flags: 0x1, streamID: streamID, payload: block, into: &frame)
        self.channel.write(frame, promise: nil)
    }

    /// Writes and flushes, and reports whether the bytes reached the socket (false once the server closed).
    func flushAndWait() async -> Bool {
        (try? await self.channel.writeAndFlush(ByteBuffer()).get()) != nil
    }

    func flush() {
        self.channel.flush()
    }

    func describe(_ frames: [Frame]) -> String {
        let seen = frames.map { "type \($0.type) stream \($0.streamID)" }.joined(separator: ", ")
        return "frames: \(seen); closed: \(self.isClosed)"
    }

    func close() async {
        try? await self.channel.close()
    }

    fileprivate static func writeFrame(
        type: UInt8,
        flags: UInt8,
        streamID: UInt32,
        payload: ByteBuffer,
        into buffer: inout ByteBuffer
    ) {
        let length = payload.readableBytes
        buffer.writeInteger(UInt8(truncatingIfNeeded: length >> 16))
        buffer.writeInteger(UInt16(truncatingIfNeeded: length))
        buffer.writeInteger(type)
        buffer.writeInteger(flags)
        buffer.writeInteger(streamID & 0x7FFF_FFFF)
        var payload = payload
        buffer.writeBuffer(&payload)
    }

    private struct FrameDecoder: ByteToMessageDecoder {
        typealias InboundOut = Frame

        mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
            guard buffer.readableBytes >= 9,
                let high = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
                let low = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt16.self)
            else { return .needMoreData }
            let length = Int(high) << 16 | Int(low)
            guard buffer.readableBytes >= 9 + length else { return .needMoreData }
            buffer.moveReaderIndex(forwardBy: 3)
            let type = buffer.readInteger(as: UInt8.self)!
            let flags = buffer.readInteger(as: UInt8.self)!
            let streamID = buffer.readInteger(as: UInt32.self)! & 0x7FFF_FFFF
            let payload = buffer.readSlice(length: length)!
            context.fireChannelRead(
                self.wrapInboundOut(Frame(type: type, flags: flags, streamID: streamID, payload: payload))
            )
            return .continue
        }
    }

    private final class Recorder: ChannelInboundHandler {
        typealias InboundIn = Frame
        let connection: H2RawConnection
        init(connection: H2RawConnection) { self.connection = connection }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = self.unwrapInboundIn(data)
            // The ACK goes out before the frame is recorded, so a test that saw the SETTINGS sends after it.
            if frame.type == Frame.settings && frame.flags & 0x1 == 0 {
                var ack = ByteBuffer()
                H2RawConnection.writeFrame(
                    type: Frame.settings,
                    flags: 0x1,
                    streamID: 0,
                    payload: ByteBuffer(),
                    into: &ack
                )
                context.writeAndFlush(NIOAny(ack), promise: nil)
            }
            self.connection.state.withLockedValue { $0.frames.append(frame) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.connection.state.withLockedValue { $0.closed = true }
        }
    }
}
