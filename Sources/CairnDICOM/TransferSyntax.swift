/// How a data set is encoded (PS3.5 10, Annex A).
public struct TransferSyntax: Sendable, Equatable {
    public var uid: String
    public var explicitVR: Bool
    public var bigEndian: Bool
    public var deflated: Bool

    public static let implicitLittle = TransferSyntax(uid: "1.2.840.10008.1.2", explicitVR: false, bigEndian: false, deflated: false)
    public static let explicitLittle = TransferSyntax(uid: "1.2.840.10008.1.2.1", explicitVR: true, bigEndian: false, deflated: false)
    public static let explicitBig = TransferSyntax(uid: "1.2.840.10008.1.2.2", explicitVR: true, bigEndian: true, deflated: false)
    public static let deflatedExplicitLittle = TransferSyntax(uid: "1.2.840.10008.1.2.1.99", explicitVR: true, bigEndian: false, deflated: true)

    /// Every other (compressed) syntax is explicit VR little endian with encapsulated pixel data.
    public init(uid: String) {
        switch uid {
        case Self.implicitLittle.uid: self = .implicitLittle
        case Self.explicitBig.uid: self = .explicitBig
        case Self.deflatedExplicitLittle.uid, "1.2.840.10008.1.2.8.1": self = .deflatedExplicitLittle
            self.uid = uid
        default: self = TransferSyntax(uid: uid, explicitVR: true, bigEndian: false, deflated: false)
        }
    }

    init(uid: String, explicitVR: Bool, bigEndian: Bool, deflated: Bool) {
        self.uid = uid
        self.explicitVR = explicitVR
        self.bigEndian = bigEndian
        self.deflated = deflated
    }
}
