/// What a gated dataset accepts of the Basic Application Level Confidentiality Profile: the
/// options (CID 7050) a file may use to keep attributes the basic profile removes, the pattern its
/// pseudonyms follow, and two cases the profile cannot settle from the header alone.
public struct DeidentificationPolicy: Sendable, Equatable {
    /// Options a file's declaration counts for. A declared option the dataset does not accept
    /// changes nothing.
    public var acceptedOptions: Set<DeidentificationOption>
    /// A regular expression every pseudonym must match as a whole (Patient ID, and names and
    /// identifiers the profile replaces with a dummy); nil: any Patient ID not shaped like a name.
    public var pseudonymPattern: String?
    /// Encapsulated documents and other embedded files (a PDF, a DICOM file inside) cannot be
    /// verified: refused unless the dataset allows them.
    public var allowEmbeddedDocuments: Bool
    /// Images of modalities that commonly burn text into pixels (US, SC, XA, RF, ES, OT) must
    /// state Burned In Annotation unless the dataset waives it.
    public var allowUnstatedBurnedInAnnotation: Bool
    /// Whether every text value the profile keeps (a kernel name, a code meaning, a window
    /// explanation: free text a name can hide in, which no rule can tell from a technical term)
    /// must be one the dataset has reviewed (`cairn gate review`). On unless the dataset waives it.
    public var reviewText: Bool
    /// The (attribute, value) pairs the dataset has reviewed and accepted.
    public var reviewedText: Set<ReviewedText>

    public init(acceptedOptions: Set<DeidentificationOption> = [], pseudonymPattern: String? = nil,
                allowEmbeddedDocuments: Bool = false, allowUnstatedBurnedInAnnotation: Bool = false,
                reviewText: Bool = true, reviewedText: Set<ReviewedText> = []) {
        self.acceptedOptions = acceptedOptions
        self.pseudonymPattern = pseudonymPattern
        self.allowEmbeddedDocuments = allowEmbeddedDocuments
        self.allowUnstatedBurnedInAnnotation = allowUnstatedBurnedInAnnotation
        self.reviewText = reviewText
        self.reviewedText = reviewedText
    }

    /// The strictest policy: no option accepted, nothing waived.
    public static let strict = DeidentificationPolicy()

    /// Throws when the pseudonym pattern does not compile.
    public func validated() throws(DeidentificationPolicyError) -> DeidentificationPolicy {
        if let pseudonymPattern {
            do { _ = try Regex(pseudonymPattern) } catch { throw .badPseudonymPattern("\(error)") }
        }
        return self
    }
}

/// A text value a dataset's reviewer has read and accepted for one attribute, wherever it occurs.
public struct ReviewedText: Sendable, Hashable, Comparable {
    public var tag: DicomTag
    public var value: String

    public init(tag: DicomTag, value: String) {
        self.tag = tag
        self.value = value
    }

    public static func < (a: ReviewedText, b: ReviewedText) -> Bool { (a.tag, a.value) < (b.tag, b.value) }
}

/// One attribute the verifier refuses, named by its path: `(0040,A730)[2]>(0040,A123)` is the
/// Person Name of the third item (items count from 0) of the Content Sequence. Never the value in
/// the description (it goes into refusals, logs and the audit trail); a kept text value the
/// dataset has not reviewed rides along in `unreviewed`, for `cairn gate review` to list.
public struct DeidentificationFinding: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var attribute: String
    public var problem: String
    public var unreviewed: ReviewedText?

    public var description: String { "\(path) \(attribute): \(problem)" }
}

/// Reads the first bytes of a value the parser left in place (`.bulk`), so the verifier can look
/// for a file embedded in it; nil when they cannot be read (a deflated data set's values).
public typealias BulkPrefixReader = (_ offset: Int, _ length: Int) -> [UInt8]?

/// Verifies a file against PS3.15 Table E.1-1 under the options the file declares and the dataset
/// accepts. The declaration of Patient Identity Removed is required and never turns a check off:
/// every attribute at any depth (sequence items, SR content trees, the File Meta group) is judged
/// by its row's action.
public struct DeidentificationVerifier {
    let profile: ConfidentialityProfile
    let policy: DeidentificationPolicy
    let pseudonym: Regex<AnyRegexOutput>?
    /// A pattern was set but does not compile (refused when the dataset was set; an index edited
    /// by hand): then no value matches it and no Patient ID is a pseudonym (fail closed).
    let patternBroken: Bool

    public init(policy: DeidentificationPolicy, profile: ConfidentialityProfile = .standard) {
        self.profile = profile
        self.policy = policy
        pseudonym = policy.pseudonymPattern.flatMap { try? Regex($0) }
        patternBroken = policy.pseudonymPattern != nil && pseudonym == nil
    }

    static let patientIdentityRemoved = DicomTag(0x0012, 0x0062)
    static let methodCodeSequence = DicomTag(0x0012, 0x0064)
    static let patientID = DicomTag(0x0010, 0x0020)
    static let encapsulatedDocument = DicomTag(0x0042, 0x0011)
    static let metaPrivateInformation = DicomTag(0x0002, 0x0102)
    static let burnedInAnnotation = DicomTag(0x0028, 0x0301)
    static let recognizableVisualFeatures = DicomTag(0x0028, 0x0302)
    static let pixelTags: Set<DicomTag> = [.pixelData, DicomTag(0x7FE0, 0x0008), DicomTag(0x7FE0, 0x0009)]
    /// Modalities whose images commonly carry burned-in text.
    static let burnedInModalities: Set<String> = ["US", "SC", "XA", "RF", "ES", "OT"]
    /// The same, by SOP Class (a file may leave Modality out): ultrasound, secondary capture,
    /// X-ray angiography and radiofluoroscopy, endoscopy (still and video).
    static let burnedInClassPrefixes = ["1.2.840.10008.5.1.4.1.1.6.", "1.2.840.10008.5.1.4.1.1.3.1", "1.2.840.10008.5.1.4.1.1.7",
                                        "1.2.840.10008.5.1.4.1.1.12.1", "1.2.840.10008.5.1.4.1.1.12.2",
                                        "1.2.840.10008.5.1.4.1.1.77.1.1"]
    /// VRs whose values are text a person could be named in.
    static let textVRs: Set<VR> = [.PN, .LO, .SH, .LT, .ST, .UT, .UC, .CS, .AE]
    static let fileMetaInformationVersion = DicomTag(0x0002, 0x0001)
    /// The bytes each number, date, time, age and UID VR may hold (PS3.5 6.2), space padding included.
    static let valueCharacters: [VR: Set<UInt8>] = {
        func set(_ text: String) -> Set<UInt8> { Set(text.utf8) }
        return [.DS: set("0123456789+-.eE "), .IS: set("0123456789+- "), .DA: set("0123456789. "), .TM: set("0123456789.: "),
                .DT: set("0123456789.+- "), .AS: set("0123456789DWMY"), .UI: set("0123456789.")]
    }()
    /// VRs whose kept values a dataset reviews: text, and URIs (a query string can name anyone).
    static let reviewedVRs: Set<VR> = [.PN, .LO, .SH, .LT, .ST, .UT, .UC, .CS, .AE, .UR]
    static let binaryVRs: Set<VR> = [.OB, .OW, .OD, .OF, .OL, .OV, .UN]
    /// Values that stand for a removed name or identifier. A marker names nobody only when it is
    /// the whole value: in a person name, every component of every component group (`ANON^Doe`
    /// names Doe).
    static let markers: Set<String> = ["ANON", "ANONYMOUS", "ANONYMIZED", "ANONYMISED", "REMOVED", "DEIDENTIFIED",
                                       "DE-IDENTIFIED", "REDACTED"]

    /// What the file declares in De-identification Method Code Sequence (scheme DCM).
    public static func declaredOptions(_ ds: DataSet) -> Set<DeidentificationOption> {
        guard let element = ds[methodCodeSequence], case .sequence(let items) = element.value else { return [] }
        var out = Set<DeidentificationOption>()
        for item in items {
            guard let code = item.strings(DicomTag(0x0008, 0x0100))?.first,
                  item.strings(DicomTag(0x0008, 0x0102))?.first == "DCM",
                  let option = DeidentificationOption(code: code) else { continue }
            out.insert(option)
        }
        return out
    }

    /// `bulk` reads the start of values the parser left in place; without it such a binary value
    /// that the profile keeps cannot be searched for an embedded file, and is refused.
    public func findings(_ file: DicomFile, bulk: BulkPrefixReader? = nil) -> [DeidentificationFinding] {
        let ds = file.dataSet
        var walk = Walk(verifier: self, declared: Self.declaredOptions(ds), subject: ds.strings(Self.patientID)?.first ?? "",
                        bulk: bulk)
        if ds.strings(Self.patientIdentityRemoved)?.first?.uppercased() != "YES" {
            walk.found.append(DeidentificationFinding(path: Self.patientIdentityRemoved.description, attribute: "PatientIdentityRemoved",
                                                      problem: "the file does not declare YES (a gated dataset requires it)"))
        }
        if let meta = file.meta { walk.judge(meta, prefix: "") }
        walk.judge(ds, prefix: "")
        walk.judgePixels(ds)
        return walk.found
    }

    /// One pass over a file: the options in force and the findings so far.
    struct Walk {
        let verifier: DeidentificationVerifier
        let declared: Set<DeidentificationOption>
        let active: Set<DeidentificationOption>
        let subject: String
        let subjectIsPseudonym: Bool
        let bulk: BulkPrefixReader?
        var found: [DeidentificationFinding] = []

        init(verifier: DeidentificationVerifier, declared: Set<DeidentificationOption>, subject: String, bulk: BulkPrefixReader?) {
            self.verifier = verifier
            self.declared = declared
            active = declared.intersection(verifier.policy.acceptedOptions)
            self.subject = subject
            subjectIsPseudonym = verifier.isSubjectPseudonym(subject)
            self.bulk = bulk
        }

        mutating func refuse(_ path: String, _ tag: DicomTag, _ problem: String, unreviewed: ReviewedText? = nil) {
            let name = tag.isPrivate ? (tag.isPrivateCreator ? "private creator" : "private attribute")
                : DataDictionary.standard.keyword(for: tag) ?? "unknown attribute"
            found.append(DeidentificationFinding(path: path, attribute: name, problem: problem, unreviewed: unreviewed))
        }

        /// A kept value: text must be one the dataset reviewed (or a term of a closed vocabulary the
        /// standard defines for the attribute); an attribute the dictionary does not know cannot be
        /// read as anything, so its value is refused.
        mutating func review(_ element: DataElement, in ds: DataSet, path: String) {
            let policy = verifier.policy
            guard policy.reviewText else { return }
            let tag = element.tag
            if !tag.isPrivate && DataDictionary.standard.entry(for: tag) == nil {
                refuse(path, tag, "holds a value of an attribute the data dictionary does not know, which cannot be judged")
                return
            }
            if tag == DeidentificationVerifier.fileMetaInformationVersion {
                if case .bytes(let bytes) = element.value, bytes == [0x00, 0x01] { return }
                refuse(path, tag, "must be 00 01")
                return
            }
            let vr = verifier.effectiveVR(element)
            if let allowed = DeidentificationVerifier.valueCharacters[vr] {
                // Numbers, dates, times, ages and UIDs: only the characters their VR allows.
                let values = verifier.strings(element, vr: vr, in: ds)
                if values?.allSatisfy({ $0.utf8.allSatisfy(allowed.contains) }) != true {
                    refuse(path, tag, "holds a \(vr) value with characters a \(vr) cannot hold")
                }
                return
            }
            guard DeidentificationVerifier.reviewedVRs.contains(vr) else { return }
            guard let values = verifier.strings(element, vr: vr, in: ds) else {
                refuse(path, tag, "holds text too large to review")
                return
            }
            for value in Set(values).sorted() where !value.isEmpty && !KeptTextVocabulary.holds(tag, value) {
                // Bytes the character set cannot decode read as U+FFFD: different bytes would then
                // match one reviewed value, and the reviewer would not have seen them.
                if value.unicodeScalars.contains("\u{FFFD}") {
                    refuse(path, tag, "holds bytes its character set cannot decode, which cannot be reviewed")
                    continue
                }
                let key = ReviewedText(tag: tag, value: value)
                if !policy.reviewedText.contains(key) {
                    refuse(path, tag, "kept text this dataset has not reviewed (cairn gate review)", unreviewed: key)
                }
            }
        }

        mutating func judge(_ ds: DataSet, prefix: String) {
            // Private creators by (group, block): the block of (gggg,xxyy) is reserved by (gggg,00xx).
            var creators: [UInt32: String] = [:]
            for element in ds.elements where element.tag.isPrivateCreator {
                creators[UInt32(element.tag.group) << 8 | UInt32(element.tag.element)] = ds.strings(element.tag)?.first
            }
            for element in ds.elements {
                let tag = element.tag
                let path = prefix + tag.description
                if tag.isGroupLength {
                    // A group length is a 4-byte UL: anything else could carry text no row judges.
                    if case .bytes(let bytes) = element.value, bytes.count == 4, element.vr == .UL || element.vr == .UN { continue }
                    refuse(path, tag, "a group length that is not a 4-byte UL value")
                    continue
                }
                if tag.isPrivate {
                    judgePrivate(element, in: ds, path: path, creators: creators)
                    continue
                }
                if tag == DeidentificationVerifier.encapsulatedDocument || tag == DeidentificationVerifier.metaPrivateInformation {
                    if DeidentificationVerifier.hasValue(element) && !verifier.policy.allowEmbeddedDocuments {
                        refuse(path, tag, "an embedded document or private information cannot be verified, and the dataset "
                            + "does not allow them (dataset set --allow-embedded-documents)")
                    }
                    continue
                }
                let (requirement, action) = requirement(for: element)
                if case .sequence(let items) = element.value {
                    // X and Z sequences must be empty; so must a D sequence, whose items only a tool
                    // can replace with a dummy (nothing in them can be told from real content),
                    // unless an option in force keeps it (then its items are judged row by row).
                    if requirement == .empty || requirement == .pseudonym {
                        if !items.isEmpty { refuse(path, tag, "\(action) attribute holds \(items.count) item(s)\(hint(tag))") }
                        continue
                    }
                    for (i, item) in items.enumerated() { judge(item, prefix: "\(path)[\(i)]>") }
                    continue
                }
                guard DeidentificationVerifier.hasValue(element) else { continue }
                switch requirement {
                case .kept:
                    if !verifier.policy.allowEmbeddedDocuments, let problem = embedded(element) {
                        refuse(path, tag, problem + " (dataset set --allow-embedded-documents)")
                    }
                    review(element, in: ds, path: path)
                case .empty:
                    refuse(path, tag, "\(action) attribute holds a value\(hint(tag))")
                case .uid:
                    if !verifier.holdsUIDs(element, in: ds) { refuse(path, tag, "\(action) attribute holds a value that is not a UID") }
                case .pseudonym:
                    if !isPseudonym(element, in: ds) {
                        refuse(path, tag, DeidentificationVerifier.textVRs.contains(verifier.effectiveVR(element))
                            ? "\(action) attribute holds a value that is not a pseudonym (the Patient ID, a marker such as "
                                + "ANONYMIZED, or the dataset's --pseudonym pattern)\(hint(tag))"
                            : "\(action) attribute holds a value (a dummy \(verifier.effectiveVR(element)) cannot be told from a "
                                + "real one)\(hint(tag))")
                    }
                }
            }
        }

        /// The row's requirement under the options in force, and the action to name in a refusal.
        func requirement(for element: DataElement) -> (ProfileRequirement, String) {
            let tag = element.tag
            if let row = verifier.profile.row(for: tag) {
                let (requirement, option) = row.requirement(under: active)
                // A Z person name may hold what names nobody: a marker, or the subject's pseudonym.
                // "Person name" by the dictionary, not by the VR the file writes.
                if requirement == .empty, option == nil, row.basicAction.contains("Z"), verifier.dictionaryVR(tag) == .PN,
                   element.vr == .PN || element.vr == .UN {
                    return (.pseudonym, row.basicAction)
                }
                return (requirement, row.basicAction)
            }
            // A person name the table does not list names somebody all the same.
            if verifier.effectiveVR(element) == .PN || verifier.dictionaryVR(tag) == .PN {
                return (.pseudonym, "person name (not in Table E.1-1)")
            }
            return (.kept, "K")
        }

        /// Why a declared option did not keep the attribute, when that is the reason.
        func hint(_ tag: DicomTag) -> String {
            guard let row = verifier.profile.row(for: tag) else { return "" }
            let unaccepted = row.options.keys.filter { declared.contains($0) && !active.contains($0) }.sorted()
            guard let option = unaccepted.first else { return "" }
            return " (the file declares \(option.rawValue), which the dataset does not accept)"
        }

        /// A whole file stored in a binary value the profile keeps: a PDF, a DICOM file, an archive
        /// or a picture. A large value (left in place by the parser) is read through `bulk`.
        func embedded(_ element: DataElement) -> String? {
            guard DeidentificationVerifier.binaryVRs.contains(element.vr) || [.UT, .LT].contains(element.vr),
                  !DeidentificationVerifier.pixelTags.contains(element.tag) else { return nil }
            let head: [UInt8]
            switch element.value {
            case .bytes(let bytes): head = Array(bytes.prefix(DeidentificationVerifier.signatureWindow))
            case .bulk(let offset, let length):
                guard let read = bulk?(offset, min(length, DeidentificationVerifier.signatureWindow)) else {
                    return "holds \(length) bytes that could not be read to look for an embedded file"
                }
                head = read
            default: return nil
            }
            return DeidentificationVerifier.embeddedFile(head).map { "holds an embedded \($0), which cannot be verified" }
        }

        mutating func judgePrivate(_ element: DataElement, in ds: DataSet, path: String, creators: [UInt32: String]) {
            let tag = element.tag
            let retain = active.contains(.retainSafePrivate)
            let profile = verifier.profile
            if tag.isPrivateCreator {
                let creator = ds.strings(tag)?.first ?? ""
                if DeidentificationVerifier.hasValue(element) && !(retain && profile.safePrivateCreators.contains(creator)) {
                    refuse(path, tag, "private attributes must be removed (X)" + (retain ? "; this creator has no safe attributes" : ""))
                }
                return
            }
            let creator = creators[UInt32(tag.group) << 8 | UInt32(tag.element >> 8)]
            let safe = retain && creator.map {
                profile.safePrivate.contains(.init(group: tag.group, element: UInt8(tag.element & 0xFF), creator: $0))
            } == true
            if safe {
                if case .sequence(let items) = element.value {
                    for (i, item) in items.enumerated() { judge(item, prefix: "\(path)[\(i)]>") }
                } else {
                    if !verifier.policy.allowEmbeddedDocuments, let problem = embedded(element) { refuse(path, tag, problem) }
                    // A private attribute has no dictionary VR: a value written in a binary VR (or
                    // as UN) could be text any reader of the vendor's dictionary shows.
                    if verifier.policy.reviewText && DeidentificationVerifier.hasValue(element) && !element.vr.isString {
                        refuse(path, tag, "a private value written as \(element.vr), which cannot be read as text or a number to judge")
                    } else {
                        review(element, in: ds, path: path)
                    }
                }
                return
            }
            if DeidentificationVerifier.hasValue(element) {
                refuse(path, tag, retain ? "not on the safe private attribute list (PS3.15 Table E.3.10-1)"
                    : "private attributes must be removed (X; retain-safe-private is not declared and accepted)")
            }
        }

        /// Burned-in text and recognizable features: what the header says of the pixels. An image
        /// is anything with pixel data; its kind comes from Modality or, failing that, the SOP Class.
        mutating func judgePixels(_ ds: DataSet) {
            let tag = DeidentificationVerifier.burnedInAnnotation
            let burnedIn = ds.strings(tag)?.first?.uppercased() ?? ""
            let isImage = DeidentificationVerifier.pixelTags.contains { ds[$0] != nil }
            if burnedIn == "YES" && !active.contains(.cleanPixelData) {
                refuse(tag.description, tag, "YES, and clean-pixel-data is not declared and accepted")
            } else if !burnedIn.isEmpty && burnedIn != "YES" && burnedIn != "NO" {
                refuse(tag.description, tag, "must say YES or NO")
            }
            let modality = ds.string("Modality")?.uppercased() ?? ""
            let sopClass = ds.string("SOPClassUID") ?? ""
            let riskyClass = DeidentificationVerifier.burnedInClassPrefixes.contains { sopClass.hasPrefix($0) }
            if burnedIn.isEmpty, isImage, !verifier.policy.allowUnstatedBurnedInAnnotation,
               DeidentificationVerifier.burnedInModalities.contains(modality) || riskyClass {
                refuse(tag.description, tag, "absent on a \(modality.isEmpty ? "SOP Class \(sopClass)" : modality) image, where text "
                    + "is often burned in; state NO after checking the pixels, or waive it (dataset set --allow-unstated-burned-in)")
            }
            let features = DeidentificationVerifier.recognizableVisualFeatures
            if ds.strings(features)?.first?.uppercased() == "YES" && !active.contains(.cleanRecognizableVisualFeatures) {
                refuse(features.description, features, "YES, and clean-recognizable-visual-features is not declared and accepted")
            }
        }

        func isPseudonym(_ element: DataElement, in ds: DataSet) -> Bool {
            let vr = verifier.effectiveVR(element)
            // A date, a time, a number or a UID cannot be told from a real one: only empty.
            guard DeidentificationVerifier.textVRs.contains(vr) else { return false }
            guard let values = verifier.strings(element, vr: vr, in: ds) else { return false }
            if element.tag == DeidentificationVerifier.patientID {
                return values.allSatisfy { $0.isEmpty || verifier.isSubjectPseudonym($0) }
            }
            return values.allSatisfy { value in
                DeidentificationVerifier.namesNobody(value, personName: vr == .PN, subject: subjectIsPseudonym ? subject : nil)
                    || verifier.matchesPattern(value)
            }
        }
    }

    /// A Patient ID is the subject's pseudonym: it matches the dataset's pattern as a whole, or
    /// (without one) it has a digit and nothing of a person's name (no component separator, no
    /// words, no comma). Without a pattern a hospital's own record number cannot be told from a
    /// pseudonym: `--pseudonym` pins the format.
    func isSubjectPseudonym(_ value: String) -> Bool {
        guard !value.isEmpty, !patternBroken else { return false }
        if pseudonym != nil { return matchesPattern(value) }
        return value.contains { $0.isASCII && $0.isNumber }
            && !value.contains { $0 == "^" || $0 == "=" || $0 == " " || $0 == "\t" || $0 == "," }
    }

    func matchesPattern(_ value: String) -> Bool {
        guard let pseudonym else { return false }
        return (try? pseudonym.wholeMatch(in: value)) != nil
    }

    /// A value that names nobody: every component of every component group (a person name), or
    /// the whole value (any other VR), is empty, a marker, or the subject's own pseudonym.
    static func namesNobody(_ value: String, personName: Bool, subject: String?) -> Bool {
        let groups = personName ? value.split(separator: "=", omittingEmptySubsequences: false) : [Substring(value)]
        return groups.allSatisfy { group in
            let components = personName ? group.split(separator: "^", omittingEmptySubsequences: false) : [group]
            return components.allSatisfy { component in
                let word = component.trimmingWhitespace()
                return word.isEmpty || markers.contains(word.uppercased()) || word == subject
            }
        }
    }

    /// The VR the dictionary gives the tag, if any.
    func dictionaryVR(_ tag: DicomTag) -> VR? {
        DataDictionary.standard.entry(for: tag).flatMap { VR(rawValue: $0.vrCode) }
    }

    /// The VR the value is judged as: the dictionary's for an element written as UN, or written in
    /// another VR where the dictionary's is a string (a Convolution Kernel written as OB is read as
    /// the SH every viewer shows); otherwise the VR it is written in.
    func effectiveVR(_ element: DataElement) -> VR {
        guard let vr = dictionaryVR(element.tag), element.vr != vr, element.vr == .UN || vr.isString else { return element.vr }
        return vr
    }

    func strings(_ element: DataElement, vr: VR, in ds: DataSet) -> [String]? {
        guard vr.isString, case .bytes = element.value else { return nil }
        var typed = element
        typed.vr = vr
        return ValueDecoder(dataSet: ds).strings(typed)
    }

    func holdsUIDs(_ element: DataElement, in ds: DataSet) -> Bool {
        guard let values = strings(element, vr: .UI, in: ds) else { return false }
        return values.allSatisfy { value in
            value.utf8.count <= 64 && value.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
                // Digits and dots (a leading zero, invalid in PS3.5 9.1 but common, names nobody).
                !part.isEmpty && part.utf8.allSatisfy { (0x30...0x39).contains($0) }
            }
        }
    }

    static func hasValue(_ element: DataElement) -> Bool {
        switch element.value {
        case .bytes(let bytes): return bytes.contains { $0 != 0x20 && $0 != 0 }
        case .bulk(_, let length): return length > 0
        case .encapsulated: return true
        case .sequence(let items): return !items.isEmpty
        }
    }

    /// How much of a binary value is searched for a file's signature (a PDF may start anywhere
    /// in its first 1,024 bytes; a DICOM file's magic is at 128).
    static let signatureWindow = 1032

    /// A whole file in these first bytes of a value: a PDF, a DICOM file with or without its
    /// preamble, a zip archive (OOXML and ODF documents too), a JPEG or PNG picture.
    static func embeddedFile(_ head: [UInt8]) -> String? {
        let dicm = Array("DICM".utf8)
        if head.starts(with: dicm) || (head.count >= 132 && Array(head[128..<132]) == dicm) { return "DICOM file" }
        if DeidentificationGate.find(Array("%PDF-".utf8), in: head) != nil { return "PDF" }
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return "zip archive or office document" }
        if head.starts(with: [0xFF, 0xD8, 0xFF]) { return "JPEG picture" }
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "PNG picture" }
        return nil
    }
}
