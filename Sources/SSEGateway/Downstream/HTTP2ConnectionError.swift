import NIOHTTP2

/// Why SwiftNIO's HTTP/2 handler ended a connection (it sent GOAWAY and fired the error), as counted in
/// `ssegate_http2_connection_errors_total{reason}`: its DoS defences by name, everything else as `protocol`.
enum HTTP2ConnectionError: String, CaseIterable, Sendable {
    /// PING, SETTINGS, PRIORITY (and ALTSVC, ORIGIN) frames over 200 per 30 s.
    case controlFrames = "control_frames"
    /// More than 5 CONTINUATION frames in a row (CVE-2024-27316 class).
    case continuationFrames = "continuation_frames"
    /// A header block larger than `SETTINGS_MAX_HEADER_LIST_SIZE` (`limits.max_header_bytes`).
    case headerBlockSize = "header_block_size"
    /// RST_STREAM frames over 200 per 30 s (rapid reset on one connection).
    case resetFrames = "reset_frames"
    /// Stream errors or other glitches over 200 per 30 s.
    case streamErrors = "stream_errors"
    /// Empty DATA frames in a row.
    case emptyDataFrames = "empty_data_frames"
    /// Over 10,000 control frames (PING or SETTINGS ACKs) queued for a peer that does not read them.
    case outboundBuffering = "outbound_buffering"
    case protocolError = "protocol"

    init(_ error: Error) {
        switch error {
        case is NIOHTTP2Errors.ExcessiveControlFrames: self = .controlFrames
        case is NIOHTTP2Errors.ExcessiveContinuationFrames: self = .continuationFrames
        case is NIOHTTP2Errors.ExcessivelyLargeHeaderBlock: self = .headerBlockSize
        case is NIOHTTP2Errors.ExcessiveRSTFrames: self = .resetFrames
        case is NIOHTTP2Errors.ExcessiveStreamErrors, is NIOHTTP2Errors.ExcessiveNumberOfGlitches: self = .streamErrors
        case is NIOHTTP2Errors.ExcessiveEmptyDataFrames: self = .emptyDataFrames
        case is NIOHTTP2Errors.ExcessiveOutboundFrameBuffering: self = .outboundBuffering
        default: self = .protocolError
        }
    }
}
