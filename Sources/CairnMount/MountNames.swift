import CXXHash

/// How index values become folder and file names (README "Mounting datasets as folders").
///
/// A name keeps the value's letters, digits, `.`, `_` and `-`; any other byte becomes `_`, a
/// leading `.` becomes `_`, and it is cut at 120 bytes. When that changed the value, or the value is
/// missing, or it is a name the layout reserves, `~` and 8 hex digits of the value's hash follow,
/// so two values never share a name by being cleaned alike (`~` is never kept from a value, so a
/// suffixed name cannot meet a clean one). Names depend only on their value, so a file keeps its
/// path while others come and go.
enum MountNames {
    static let maxLength = 120

    /// `value` made safe, or `placeholder` when there is none; `reserved` names get a suffix too.
    static func component(_ value: String?, placeholder: String, reserved: Set<String> = []) -> String {
        guard let value, !value.isEmpty else { return placeholder + "~" + shortHash(placeholder + "\u{0}") }
        var bytes = value.utf8.prefix(maxLength).map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                byte
            default:
                UInt8(ascii: "_")
            }
        }
        if bytes.first == UInt8(ascii: ".") { bytes[0] = UInt8(ascii: "_") }
        let cleaned = String(decoding: bytes, as: UTF8.self)
        if cleaned != value || reserved.contains(cleaned) {
            return cleaned + "~" + shortHash(value)
        }
        return cleaned
    }

    static func shortHash(_ value: String) -> String {
        let hash = value.utf8CString.withUnsafeBufferPointer { XXH3_64bits($0.baseAddress, $0.count - 1) }
        let hex = String(hash >> 32, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
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
