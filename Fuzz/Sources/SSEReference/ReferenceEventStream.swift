import SSE

/// The WHATWG HTML algorithm "Interpreting an event stream" (§9.2.6), written out step by step with no
/// attention to speed, to check ``SSEParser`` against: same outputs for the same bytes, however split.
///
/// It decodes the whole stream first and works on Unicode scalars, as the standard does; `SSEParser`
/// works on bytes and decodes per field. Where the gateway departs from the standard on purpose
/// (see `SSEParser`'s documentation), the reference departs the same way, and each place says so:
/// 1. A block with a valid `id` but no `data` is reported as an id-only event (`data == nil`); the standard
///    fires nothing but still moves the last event ID, which the gateway must forward.
/// 2. An event carries the `id` of its own block (nil without one), not the persistent last event ID
///    buffer; that buffer is compared separately (`lastEventID`).
/// 3. An empty event type buffer is `type == nil` (both mean `message`).
/// 4. A `retry` of digits too large for `Int` is ignored (the standard sets a reconnection time no
///    client can use).
/// Limits (``SSEParser/Limits``) are not modelled: they only ever make the parser stop with an error.
public enum ReferenceEventStream {
    /// What interpreting `bytes` to the end produces, in order, and the last event ID buffer at the end.
    public static func interpret(_ bytes: [UInt8]) -> (outputs: [SSEParser.Output], lastEventID: String) {
        // "Streams must be decoded using the UTF-8 decode algorithm"; "one leading U+FEFF BYTE ORDER MARK
        // character must be ignored if any are present".
        var scalars = Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)
        if scalars.first == "\u{FEFF}" {
            scalars.removeFirst()
        }

        var outputs: [SSEParser.Output] = []
        var data: [Unicode.Scalar] = []
        var eventType: [Unicode.Scalar] = []
        var lastEventID: [Unicode.Scalar] = []
        var blockID: [Unicode.Scalar]? = nil  // departure 2

        func dispatch() {
            // "If the data buffer is an empty string, set the data buffer and the event type buffer to the
            // empty string and return."
            if data.isEmpty {
                if let id = blockID {  // departure 1
                    outputs.append(.event(ServerSentEvent(id: string(id), type: nil, data: nil)))
                }
                eventType = []
                blockID = nil
                return
            }
            // "If the data buffer's last character is a U+000A LINE FEED (LF) character, then remove the last
            // character from the data buffer."
            if data.last == "\n" {
                data.removeLast()
            }
            let type = eventType.isEmpty ? nil : string(eventType)  // departure 3
            outputs.append(.event(ServerSentEvent(id: blockID.map(string), type: type, data: string(data))))
            data = []
            eventType = []
            blockID = nil
        }

        func process(field: [Unicode.Scalar], value: [Unicode.Scalar]) {
            // Compared as scalars: `String`'s `==` is canonical equivalence, not what the standard means.
            switch field.map(\.value) {
            case Array("event".unicodeScalars.map(\.value)):
                eventType = value
            case Array("data".unicodeScalars.map(\.value)):
                data += value
                data.append("\n")
            case Array("id".unicodeScalars.map(\.value)):
                // "If the field value does not contain U+0000 NULL, then set the last event ID buffer to the
                // field value. Otherwise, ignore the field."
                if !value.contains("\0") {
                    lastEventID = value
                    blockID = value
                }
            case Array("retry".unicodeScalars.map(\.value)):
                // "If the field value consists of only ASCII digits, then interpret the field value as an
                // integer in base ten, and set the event stream's reconnection time to that integer."
                if !value.isEmpty, value.allSatisfy({ $0 >= "0" && $0 <= "9" }), let ms = Int(string(value)) {
                    outputs.append(.retry(ms))  // departure 4: nil from Int(_:) on overflow
                }
            default:
                break  // "Otherwise: the field is ignored."
            }
        }

        func process(line: [Unicode.Scalar]) {
            // "If the line is empty (a blank line): dispatch the event."
            guard let first = line.first else {
                dispatch()
                return
            }
            // "If the line starts with a U+003A COLON character (:): ignore the line."
            if first == ":" {
                return
            }
            // "If the line contains a U+003A COLON character: collect the characters on the line before the
            // first colon, and let field be that string; collect the characters after the first colon, and
            // let value be that string. If value starts with a U+0020 SPACE character, remove it."
            if let colon = line.firstIndex(of: ":") {
                var value = Array(line[(colon + 1)...])
                if value.first == " " {
                    value.removeFirst()
                }
                process(field: Array(line[..<colon]), value: value)
            } else {
                // "Otherwise: process the field using the whole line as the field name, and the empty string
                // as the field value."
                process(field: line, value: [])
            }
        }

        // Lines end with CRLF, a lone LF or a lone CR. A last line without its end is never processed:
        // "Once the end of the file is reached, any pending data must be discarded."
        var line: [Unicode.Scalar] = []
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "\r" || scalar == "\n" {
                process(line: line)
                line = []
                if scalar == "\r", index + 1 < scalars.count, scalars[index + 1] == "\n" {
                    index += 1
                }
            } else {
                line.append(scalar)
            }
            index += 1
        }
        return (outputs, string(lastEventID))
    }

    private static func string(_ scalars: [Unicode.Scalar]) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }
}
