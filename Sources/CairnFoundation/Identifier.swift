/// The identifiers Cairn accepts for datasets (and node ids): 1-128 of A-Z a-z 0-9 . _ -, not
/// starting with . or - (so one can be neither a path step such as `..` nor read as an option).
/// The node's CLI, its server and the hub's snapshot intake all apply the same rule.
public enum Identifier {
    public static func isValid(_ id: String) -> Bool {
        let allowed = id.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
                || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D
        }
        return allowed && (1...128).contains(id.utf8.count) && id.first != "." && id.first != "-"
    }
}
