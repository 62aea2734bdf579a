import Crypto

/// A secret shared with a peer that cannot hold a token (samply Focus sends `Authorization:
/// Secret <s>`): compared through digests, so the time taken says nothing about where they differ.
public enum SharedSecret {
    public static func matches(_ given: Substring, _ expected: String) -> Bool {
        let a = SHA256.hash(data: Array(given.utf8)), b = SHA256.hash(data: Array(expected.utf8))
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
