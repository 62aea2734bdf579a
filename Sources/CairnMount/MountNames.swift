import CXXHash
import CairnFoundation
import Crypto
import Foundation

/// How index values become folder and file names (README "Mounting datasets as folders").
///
/// A name keeps the value's letters, digits, `.`, `_` and `-`; any other byte becomes `_`, a
/// leading `.` or `-` becomes `_` (so no name is a hidden file or reads as an option to a shell
/// command), and it is cut at 120 bytes. When that changed the value, or the value is
/// missing, or it is a name the layout reserves, `~` and 16 hex digits of the value's SHA-256 follow,
/// so two values never share a name by being cleaned alike (`~` is never kept from a value, so a
/// suffixed name cannot meet a clean one). Names depend only on their value, so a file keeps its
/// path while others come and go.
enum MountNames {
    static let maxLength = 120

    /// `value` made safe, or `placeholder` when there is none; a value equal to the placeholder or
    /// a `reserved` name gets the suffix too.
    static func component(_ value: String?, placeholder: String, reserved: Set<String> = []) -> String {
        guard let value, !value.isEmpty else { return placeholder }
        // Most values (UIDs, pseudonyms) are already safe: no copy.
        if value.utf8.count <= maxLength, value.utf8.first != UInt8(ascii: "."), value.utf8.first != UInt8(ascii: "-"),
           value.utf8.allSatisfy(isKept),
           value != placeholder, !reserved.contains(value) {
            return value
        }
        var bytes = value.utf8.prefix(maxLength).map { isKept($0) ? $0 : UInt8(ascii: "_") }
        if bytes.first == UInt8(ascii: ".") || bytes.first == UInt8(ascii: "-") { bytes[0] = UInt8(ascii: "_") }
        let cleaned = String(decoding: bytes, as: UTF8.self)
        if cleaned != value || cleaned == placeholder || reserved.contains(cleaned) {
            return cleaned + "~" + shortHash(value)
        }
        return cleaned
    }

    static func isKept(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    /// The first `hexDigits` hex digits of the value's SHA-256: 16 (64 bits) cannot be matched on
    /// purpose, so no label can be made to share another's folder.
    static func shortHash(_ value: String, hexDigits: Int = 16) -> String {
        String(Hex.encode(SHA256.hash(data: Data(value.utf8))).prefix(hexDigits))
    }

    /// Whole seconds since 1970 from a time read from the index (never traps on NaN or huge values).
    static func seconds(_ date: Date) -> Int64 {
        let value = date.timeIntervalSince1970
        guard value.isFinite else { return 0 }
        return Int64(max(min(value, 9e15), -9e15))
    }

    /// A stable inode number for `name` in the folder `parent`: 2 and up (1 is the root). Derived
    /// from the parent's number, so it follows from the path alone.
    static func inode(parent: UInt64, name: String) -> UInt64 {
        var key = withUnsafeBytes(of: parent.littleEndian) { Array($0) }
        key.append(contentsOf: name.utf8)
        let hash = key.withUnsafeBytes { XXH3_64bits($0.baseAddress, $0.count) }
        return hash < 2 ? hash + 2 : hash
    }
}
