import Foundation

/// JSON string literals for the few places that write JSON by hand (the gap event, `/api/feeds`, the
/// status stream, JSON logs, `ssegate bench --json`): one escaping rule for all of them.
public enum JSONText {
    /// `text` as a quoted JSON string, with quotes, backslashes and control characters escaped.
    public static func string(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
