import CairnHTTP
import CairnStore

extension APIError {
    /// Maps store failures to statuses; the detail names digest and frame but never a token.
    static func from(_ error: any Error) -> APIError {
        if let error = error as? APIError { return error }
        guard let error = error as? StoreError else { return APIError(.internalServerError, "internal", "\(error)") }
        switch error {
        case .notFound: return .notFound("\(error)")
        case .diskFull: return APIError(.insufficientStorage, "disk_full", "\(error)")
        case .invalidArgument: return .badRequest("\(error)")
        case .rangeNotSatisfiable: return APIError(.rangeNotSatisfiable, "range_not_satisfiable", "\(error)")
        case .missing, .corruptFrame, .corruptBlob, .digestMismatch:
            return APIError(.internalServerError, "blob_unavailable", "\(error)")
        default: return APIError(.internalServerError, "internal", "\(error)")
        }
    }
}
