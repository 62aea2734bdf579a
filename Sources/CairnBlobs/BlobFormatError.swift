/// What the blob format's encoders and decoders report; the store adds the blob's digest and path.
public enum BlobFormatError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A compression library refused or failed an operation.
    case codec(String)

    public var description: String {
        switch self {
        case .codec(let message): return "codec error: \(message)"
        }
    }
}
