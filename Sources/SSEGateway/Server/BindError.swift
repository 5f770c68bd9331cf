import Foundation
import NIOCore

/// A listener or the admin endpoint could not be bound.
public struct BindError: Error, CustomStringConvertible {
    public var address: HostPort
    public var underlying: Error

    public var description: String {
        if let io = self.underlying as? IOError {
            return "cannot listen on \(self.address): \(String(cString: strerror(io.errnoCode)))"
        }
        return "cannot listen on \(self.address): \(self.underlying)"
    }
}
