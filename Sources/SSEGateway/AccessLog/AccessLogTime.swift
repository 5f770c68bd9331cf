/// RFC 3339 timestamps in UTC with milliseconds (`2026-11-30T08:15:02.120Z`), computed from the epoch by
/// arithmetic: no formatter, no locale, no allocation beyond the string.
enum AccessLogTime {
    static func rfc3339(milliseconds: Int64) -> String {
        let (days, dayMilliseconds) = Self.floorDivide(milliseconds, 86_400_000)
        let (year, month, day) = Self.civil(fromDays: days)
        let seconds = dayMilliseconds / 1000
        var text = ""
        text.reserveCapacity(24)
        Self.pad(year, 4, &text)
        text += "-"
        Self.pad(month, 2, &text)
        text += "-"
        Self.pad(day, 2, &text)
        text += "T"
        Self.pad(seconds / 3600, 2, &text)
        text += ":"
        Self.pad(seconds / 60 % 60, 2, &text)
        text += ":"
        Self.pad(seconds % 60, 2, &text)
        text += "."
        Self.pad(dayMilliseconds % 1000, 3, &text)
        text += "Z"
        return text
    }

    private static func floorDivide(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
        let quotient = value >= 0 ? value / divisor : (value - divisor + 1) / divisor
        return (quotient, value - quotient * divisor)
    }

    /// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    private static func pad(_ value: Int64, _ width: Int, _ text: inout String) {
        let digits = String(value)
        if digits.count < width { text += String(repeating: "0", count: width - digits.count) }
        text += digits
    }
}
