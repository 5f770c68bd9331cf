#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An open access log destination: standard output, or a file opened for appending. Blocking writes; used
/// only by the access log's writer thread (and opened by whoever configures it, off the event loops).
struct AccessLogFile: Sendable {
    let destination: AccessLogDestination
    let descriptor: CInt

    /// An error opening the file, with the path and `strerror`'s text.
    struct OpenError: Error, CustomStringConvertible {
        var path: String
        var code: CInt
        var description: String { "cannot open access log \(self.path): \(String(cString: strerror(self.code)))" }
    }

    /// Opens `destination`: a file is created when missing (mode 0644) and appended to.
    static func open(_ destination: AccessLogDestination) throws(OpenError) -> AccessLogFile {
        switch destination {
        case .stdout:
            return AccessLogFile(destination: destination, descriptor: STDOUT_FILENO)
        case .file(let path):
            #if canImport(Darwin)
            let fd = Darwin.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            #elseif canImport(Musl)
            let fd = Musl.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            #else
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            #endif
            guard fd >= 0 else { throw OpenError(path: path, code: errno) }
            return AccessLogFile(destination: destination, descriptor: fd)
        }
    }

    /// Writes all of `bytes`; false when the descriptor fails (the lines are lost, and counted so).
    func write(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                #if canImport(Darwin)
                let written = Darwin.write(self.descriptor, raw.baseAddress! + offset, raw.count - offset)
                #elseif canImport(Musl)
                let written = Musl.write(self.descriptor, raw.baseAddress! + offset, raw.count - offset)
                #else
                let written = Glibc.write(self.descriptor, raw.baseAddress! + offset, raw.count - offset)
                #endif
                if written < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += written
            }
            return true
        }
    }

    /// Closes a file (standard output stays open).
    func close() {
        guard case .file = self.destination else { return }
        #if canImport(Darwin)
        _ = Darwin.close(self.descriptor)
        #elseif canImport(Musl)
        _ = Musl.close(self.descriptor)
        #else
        _ = Glibc.close(self.descriptor)
        #endif
    }
}
