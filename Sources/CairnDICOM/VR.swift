/// The value representations of PS3.5 6.2.
public enum VR: String, Sendable, CaseIterable {
    case AE, AS, AT, CS, DA, DS, DT, FL, FD, IS, LO, LT, OB, OD, OF, OL, OV, OW, PN, SH, SL, SQ, SS, ST, SV, TM,
         UC, UI, UL, UN, UR, US, UT, UV

    init?(bytes b0: UInt8, _ b1: UInt8) {
        guard (0x41...0x5A).contains(b0), (0x41...0x5A).contains(b1) else { return nil }
        self.init(rawValue: String(decoding: [b0, b1], as: UTF8.self))
    }

    /// Explicit VR encodings with 2 reserved bytes and a 32-bit length (PS3.5 7.1.2).
    public var hasLongLength: Bool {
        switch self {
        case .OB, .OD, .OF, .OL, .OV, .OW, .SQ, .SV, .UC, .UN, .UR, .UT, .UV: return true
        default: return false
        }
    }

    /// Binary bulk VRs, left out of the JSON model (bulk data).
    public var isBulk: Bool {
        switch self {
        case .OB, .OD, .OF, .OL, .OV, .OW, .UN: return true
        default: return false
        }
    }

    public var isString: Bool {
        switch self {
        case .AE, .AS, .CS, .DA, .DS, .DT, .IS, .LO, .LT, .PN, .SH, .ST, .TM, .UC, .UI, .UR, .UT: return true
        default: return false
        }
    }

    /// String VRs that hold one value: a backslash in them is text, not a separator.
    public var isSingleValuedText: Bool { self == .LT || self == .ST || self == .UT || self == .UR }

    /// Text whose bytes go through Specific Character Set (the others are ASCII by definition).
    public var usesCharacterSet: Bool {
        switch self {
        case .LO, .LT, .PN, .SH, .ST, .UC, .UT: return true
        default: return false
        }
    }

    /// Size of one binary number, for the numeric VRs.
    public var numberSize: Int? {
        switch self {
        case .US, .SS: return 2
        case .UL, .SL, .FL: return 4
        case .FD, .SV, .UV: return 8
        case .AT: return 4
        default: return nil
        }
    }
}
