import Foundation
import Glibc

/// Console output: stdout for results, stderr for errors and progress.
enum Terminal {
    static func error(_ message: String) {
        FileHandle.standardError.write(Data(("cairn: " + message + "\n").utf8))
    }

    static func flushStdout() { fflush(nil) }

    /// Text that came from a file or a client, safe to print: control characters (a newline, a
    /// tab, an ANSI escape) are shown as `\u{…}` so they cannot forge lines or colours.
    static func escaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.properties.generalCategory == .control || scalar.value == 0x7F {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static var stderrIsTerminal: Bool { isatty(2) == 1 }

    /// Prints one JSON value on one line (sorted keys, so output is stable).
    static func printJSON(_ value: Any) {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        print(String(decoding: data, as: UTF8.self))
    }

    static func printJSON<T: Encodable>(encodable value: T) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        print(String(decoding: data, as: UTF8.self))
    }

    /// Writes raw bytes to stdout; false when the reader went away (EPIPE).
    static func writeStdout(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = write(1, bytes.baseAddress! + done, bytes.count - done)
            if n > 0 { done += n; continue }
            if n < 0 && errno == EINTR { continue }
            return false
        }
        return true
    }

    /// Decimal units, as disks are sold.
    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB", "PB"]
        var value = Double(count)
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.2f %@", value, units[unit])
    }

    static func rate(_ count: UInt64, seconds: Double) -> String {
        seconds > 0 ? bytes(UInt64(Double(count) / seconds)) + "/s" : "-"
    }
}

/// A one-line progress bar on stderr, redrawn at most ten times a second; silent when stderr
/// is not a terminal.
final class ProgressBar: @unchecked Sendable {
    private let enabled: Bool
    private let label: String
    private let totalItems: Int
    private let totalBytes: UInt64
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let lock = NSLock()

    init(label: String, totalItems: Int, totalBytes: UInt64, enabled: Bool = Terminal.stderrIsTerminal) {
        self.label = label
        self.totalItems = totalItems
        self.totalBytes = totalBytes
        self.enabled = enabled
    }

    func update(items: Int, bytes: UInt64, force: Bool = false) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        let fraction = totalBytes > 0 ? Double(bytes) / Double(totalBytes)
            : (totalItems > 0 ? Double(items) / Double(totalItems) : 1)
        let width = 30
        let filled = Int((min(1, fraction) * Double(width)).rounded(.down))
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        let elapsed = now.timeIntervalSince(start)
        let line = String(format: "\r%@ [%@] %3d%%  %d/%d  %@  %@ ", label, bar, Int(fraction * 100), items, totalItems,
                          Terminal.bytes(bytes), Terminal.rate(bytes, seconds: elapsed))
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
