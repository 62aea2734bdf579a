import CairnHTTP
import CairnStore

extension APIError {
    /// Maps store failures to statuses. The detail names digest and frame, never a token, and
    /// never a path on the node (its layout is the operator's: `cairn verify` names the files).
    static func from(_ error: any Error) -> APIError {
        if let error = error as? APIError { return error }
        guard let error = error as? StoreError else { return APIError(.internalServerError, "internal", "internal error") }
        switch error {
        case .notFound: return .notFound("\(error)")
        case .diskFull: return APIError(.insufficientStorage, "disk_full", "the node's disk is full")
        case .invalidArgument: return .badRequest("\(error)")
        case .rangeNotSatisfiable: return APIError(.rangeNotSatisfiable, "range_not_satisfiable", "\(error)")
        case .missing(let digest, _): return APIError(.internalServerError, "blob_unavailable", "blob \(digest) is missing")
        case .corruptFrame(let digest, let frame, _):
            return APIError(.internalServerError, "blob_unavailable", "blob \(digest) is damaged (frame \(frame) fails its checksum)")
        case .corruptBlob(let digest, _, _): return APIError(.internalServerError, "blob_unavailable", "blob \(digest) is damaged")
        case .digestMismatch(let expected, _, _):
            return APIError(.internalServerError, "blob_unavailable", "blob \(expected) does not match its digest")
        case .io(let op, _, _): return APIError(.internalServerError, "internal", "I/O error (\(op))")
        default: return APIError(.internalServerError, "internal", "internal error")
        }
    }
}
