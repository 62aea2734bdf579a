import Testing
@testable import CairnDICOM

/// The verifier's rules, on data sets built byte by byte (the Python tests plant every row of the
/// table through pydicom; these pin the rules themselves).
@Suite struct DeidentificationTests {
    /// A declared instance: PatientIdentityRemoved = YES, the options given in (0012,0064), then `body`.
    func instance(options: [String] = [], subject: String = "SUBJ-0001", _ body: (inout Part10Builder) -> Void = { _ in }) throws
        -> DicomFile {
        var b = Part10Builder()
        b.meta(transferSyntax: "1.2.840.10008.1.2.1")
        var elements: [(UInt32, (inout Part10Builder) -> Void)] = [
            (0x0008_0016, { $0.text(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.2") }),
            (0x0008_0018, { $0.text(0x0008, 0x0018, "UI", "1.2.3.4") }),
            (0x0008_0060, { $0.text(0x0008, 0x0060, "CS", "CT") }),
            (0x0010_0020, { $0.text(0x0010, 0x0020, "LO", subject) }),
            (0x0012_0062, { $0.text(0x0012, 0x0062, "CS", "YES") }),
            (0x0020_000D, { $0.text(0x0020, 0x000D, "UI", "1.2.3") }),
            (0x0020_000E, { $0.text(0x0020, 0x000E, "UI", "1.2.3.1") }),
        ]
        if !options.isEmpty {
            elements.append((0x0012_0064, { b in
                var items: [UInt8] = []
                for code in options {
                    var item = Part10Builder()
                    item.bytes = []
                    item.text(0x0008, 0x0100, "SH", code)
                    item.text(0x0008, 0x0102, "SH", "DCM")
                    items += [0xFE, 0xFF, 0x00, 0xE0] + le32(item.bytes.count) + item.bytes
                }
                b.element(0x0012, 0x0064, "SQ", items)
            }))
        }
        var extra = Part10Builder()
        extra.bytes = []
        body(&extra)
        // The extra elements are written in order by the test; the base ones around them by tag.
        let firstExtra = extra.bytes.count >= 4 ? UInt32(extra.bytes[0]) << 16 | UInt32(extra.bytes[1]) << 24
            | UInt32(extra.bytes[2]) | UInt32(extra.bytes[3]) << 8 : UInt32.max
        var extraWritten = false
        for (tag, write) in elements.sorted(by: { $0.0 < $1.0 }) {
            if !extraWritten && firstExtra < tag {
                b.bytes += extra.bytes
                extraWritten = true
            }
            write(&b)
        }
        if !extraWritten { b.bytes += extra.bytes }
        return try DicomParser().parse(bytes: b.bytes)
    }

    func le32(_ n: Int) -> [UInt8] { [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24 & 0xFF)] }

    /// The findings under `policy`; kept text is reviewed only when asked (`keptTextMustBeReviewed`
    /// pins that rule; the others pin the table's).
    func findings(_ file: DicomFile, _ policy: DeidentificationPolicy = .strict, review: Bool = false) -> [String] {
        var policy = policy
        policy.reviewText = review
        return DeidentificationVerifier(policy: policy).findings(file).map(\.description)
    }

    @Test func theTableIsWhole() {
        let profile = ConfidentialityProfile.standard
        #expect(profile.rows.count == 643)  // 647 rows less the three masked ones and "private attributes"
        #expect(profile.row(for: DicomTag(0x0010, 0x0010))?.basicAction == "Z")
        #expect(profile.row(for: DicomTag(0x0010, 0x0020))?.basicAction == "Z/D")
        #expect(profile.row(for: DicomTag(0x6002, 0x3000))?.basicAction == "X")  // overlay data, a repeating group
        #expect(profile.row(for: DicomTag(0x6003, 0x3000)) == nil)  // odd group: private, not an overlay
        #expect(profile.row(for: DicomTag(0x0008, 0x0020))?.options[.retainLongitudinalModifiedDates] == .kept)
        #expect(profile.privateRow.options[.retainSafePrivate] == .kept)
        #expect(profile.safePrivate.contains(.init(group: 0x0019, element: 0x0C, creator: "SIEMENS MR HEADER")))
        #expect(ProfileRequirement(action: "X/Z/U*") == .uid)
        #expect(ProfileRequirement(action: "X/Z/D") == .pseudonym)
        #expect(ProfileRequirement(action: "X/Z") == .empty)
        #expect(ProfileRequirement(action: "Q") == nil)
    }

    @Test func aCleanInstancePassesAndTheDeclarationIsRequired() throws {
        #expect(findings(try instance()) == [])
        let undeclared = try DicomParser().parse(bytes: {
            var b = Part10Builder()
            b.meta(transferSyntax: "1.2.840.10008.1.2.1")
            b.text(0x0010, 0x0020, "LO", "SUBJ-1")
            return b.bytes
        }())
        #expect(findings(undeclared).first?.hasPrefix("(0012,0062) PatientIdentityRemoved") == true)
    }

    @Test func markersNameNobodyOnlyAsTheWholeValue() {
        let nobody = ["", "^", "ANONYMIZED", "anon", "ANON^^^", "REMOVED=ANON", "ANON^SUBJ-1", "SUBJ-1"]
        let somebody = ["ANON^Doe^John", "ANON-Doe^John", "ANON_JOHN_DOE", "ANONYMIZED Doe John", "ANON^^^^=Yamada^Tarou",
                        "Anonsen^Per", "Doe^John"]
        for value in nobody { #expect(DeidentificationVerifier.namesNobody(value, personName: true, subject: "SUBJ-1"), "\(value)") }
        for value in somebody {
            #expect(!DeidentificationVerifier.namesNobody(value, personName: true, subject: "SUBJ-1"), "\(value)")
        }
        // Outside a person name the whole value must be the marker: `^` is not a separator there.
        #expect(!DeidentificationVerifier.namesNobody("ANON^Doe", personName: false, subject: nil))
    }

    @Test func optionsCountOnlyWhenDeclaredAndAccepted() throws {
        let sex: (inout Part10Builder) -> Void = { $0.text(0x0010, 0x0040, "CS", "F") }
        let accepts = DeidentificationPolicy(acceptedOptions: [.retainPatientCharacteristics])
        #expect(findings(try instance(options: ["113108"], sex), accepts) == [])
        let declaredOnly = findings(try instance(options: ["113108"], sex))
        #expect(declaredOnly == ["(0010,0040) PatientSex: Z attribute holds a value (the file declares "
            + "retain-patient-characteristics, which the dataset does not accept)"])
        #expect(findings(try instance(sex), accepts) == ["(0010,0040) PatientSex: Z attribute holds a value"])
    }

    @Test func personNamesAndThePseudonymPattern() throws {
        let name: (String) -> (inout Part10Builder) -> Void = { value in { $0.text(0x0010, 0x0010, "PN", value) } }
        #expect(findings(try instance(name("SUBJ-0001"))) == [])
        #expect(findings(try instance(name("Doe^Jane"))).first?.hasPrefix("(0010,0010) PatientName: Z attribute holds a value "
            + "that is not a pseudonym") == true)
        let pattern = DeidentificationPolicy(pseudonymPattern: "LUNG-[0-9]{4}")
        #expect(findings(try instance(subject: "LUNG-0042"), pattern) == [])
        #expect(findings(try instance(subject: "12345678"), pattern).first?.hasPrefix("(0010,0020) PatientID") == true)
        #expect(findings(try instance(subject: "Doe^John")).first?.hasPrefix("(0010,0020) PatientID") == true)
        #expect(findings(try instance(subject: "Doe John")).first?.hasPrefix("(0010,0020) PatientID") == true)
        #expect(throws: DeidentificationPolicyError.self) { try DeidentificationPolicy(pseudonymPattern: "([").validated() }
    }

    @Test func privateAttributesNeedRetainSafePrivateAndTheSafeList() throws {
        let siemens: (inout Part10Builder) -> Void = { b in
            b.text(0x0019, 0x0010, "LO", "SIEMENS MR HEADER")
            b.element(0x0019, 0x100C, "IS", Array("12".utf8))
            b.text(0x0019, 0x1020, "LO", "Doe^John")
        }
        let strict = findings(try instance(siemens))
        #expect(strict.count == 3 && strict.allSatisfy { $0.contains("private") })
        let retain = DeidentificationPolicy(acceptedOptions: [.retainSafePrivate])
        #expect(findings(try instance(options: ["113111"], siemens), retain)
            == ["(0019,1020) private attribute: not on the safe private attribute list (PS3.15 Table E.3.10-1)"])
    }

    @Test func embeddedDocumentsAndBurnedInText() throws {
        let pdf: (inout Part10Builder) -> Void = { $0.element(0x0042, 0x0011, "OB", Array("%PDF-1.4 Doe".utf8)) }
        #expect(findings(try instance(pdf)).first?.hasPrefix("(0042,0011) EncapsulatedDocument: an embedded document") == true)
        #expect(findings(try instance(pdf), DeidentificationPolicy(allowEmbeddedDocuments: true)) == [])
        let ultrasound: (inout Part10Builder) -> Void = { b in
            b.element(0x0028, 0x0010, "US", [2, 0])
            b.element(0x7FE0, 0x0010, "OB", [0, 0, 0, 0])
        }
        var file = try instance(ultrasound)
        file.dataSet.elements = file.dataSet.elements.map { element in
            var copy = element
            if element.tag == DicomTag(0x0008, 0x0060) { copy.value = .bytes(Array("US".utf8)) }
            return copy
        }
        #expect(findings(file).first?.hasPrefix("(0028,0301) BurnedInAnnotation: absent on a US image") == true)
        #expect(findings(file, DeidentificationPolicy(allowUnstatedBurnedInAnnotation: true)) == [])
    }

    @Test func optionNamesParse() throws {
        #expect(try DeidentificationOption.parseList("retain-uids, clean-descriptors,") == [.retainUIDs, .cleanDescriptors])
        #expect(throws: DeidentificationPolicyError.self) { try DeidentificationOption.parseList("retain-all") }
        #expect(Set(DeidentificationOption.allCases.map(\.code)).count == 12)
    }

    /// Text the table keeps (a window explanation, a kernel name, a code meaning at any depth) is
    /// stored only when the dataset reviewed that value for that attribute; closed vocabularies
    /// (Modality, YES/NO, the method codes) need no review; a value the dictionary cannot place is refused.
    @Test func keptTextMustBeReviewed() throws {
        let explanation = DicomTag(0x0028, 0x1055), meaning = DicomTag(0x0008, 0x0104)
        let file = try instance(options: ["113108"]) { b in
            var item = Part10Builder()
            item.bytes = []
            item.text(0x0008, 0x0100, "SH", "T-D3000")
            item.text(0x0008, 0x0102, "SH", "SRT")
            item.text(0x0008, 0x0104, "LO", "John Doe")
            b.element(0x0008, 0x2218, "SQ", [0xFE, 0xFF, 0x00, 0xE0] + le32(item.bytes.count) + item.bytes)
            b.text(0x0018, 0x1210, "SH", "B30f")
            b.text(0x0028, 0x1055, "LO", "Doe^John\\WINDOW2")
        }
        let none = findings(file, review: true)
        #expect(none == [
            "(0008,2218)[0]>(0008,0100) CodeValue: kept text this dataset has not reviewed (cairn gate review)",
            "(0008,2218)[0]>(0008,0104) CodeMeaning: kept text this dataset has not reviewed (cairn gate review)",
            "(0018,1210) ConvolutionKernel: kept text this dataset has not reviewed (cairn gate review)",
            "(0028,1055) WindowCenterWidthExplanation: kept text this dataset has not reviewed (cairn gate review)",
            "(0028,1055) WindowCenterWidthExplanation: kept text this dataset has not reviewed (cairn gate review)",
        ])
        // The values ride along for `gate review`, never in the description.
        let unreviewed = DeidentificationVerifier(policy: .strict).findings(file).compactMap(\.unreviewed)
        #expect(Set(unreviewed.map(\.value)) == ["T-D3000", "John Doe", "B30f", "Doe^John", "WINDOW2"])
        #expect(!none.joined().contains("Doe"))
        // A reviewer accepts the technical terms and not the names: the names are what is left.
        var policy = DeidentificationPolicy.strict
        policy.reviewedText = [ReviewedText(tag: DicomTag(0x0018, 0x1210), value: "B30f"), ReviewedText(tag: explanation, value: "WINDOW2"),
                               ReviewedText(tag: DicomTag(0x0008, 0x0100), value: "T-D3000")]
        #expect(findings(file, policy, review: true) == [
            "(0008,2218)[0]>(0008,0104) CodeMeaning: kept text this dataset has not reviewed (cairn gate review)",
            "(0028,1055) WindowCenterWidthExplanation: kept text this dataset has not reviewed (cairn gate review)",
        ])
        policy.reviewedText.insert(ReviewedText(tag: meaning, value: "John Doe"))
        policy.reviewedText.insert(ReviewedText(tag: explanation, value: "Doe^John"))
        #expect(findings(file, policy, review: true) == [])
        // A value reviewed for one attribute is not reviewed for another.
        let moved = try instance(options: ["113108"]) { b in b.text(0x0018, 0x1160, "SH", "B30f") }
        #expect(findings(moved, policy, review: true) == ["(0018,1160) FilterType: kept text this dataset has not reviewed (cairn gate review)"])
        // A standard attribute the dictionary does not know: refused, whatever its VR.
        let unlisted = try instance { b in b.text(0x0008, 0xFFF0, "LO", "Jane") }
        #expect(findings(unlisted, review: true).contains { $0.hasPrefix("(0008,FFF0) unknown attribute: holds a value of an attribute the data dictionary does not know") })
    }

    /// The second black-box review: a kept text attribute written in another VR is judged as the
    /// dictionary's VR; numbers, dates, times and ages hold only their VR's characters, kept by an
    /// option or not; the File Meta version is 00 01.
    @Test func keptValuesAreJudgedByTheirDictionaryVR() throws {
        for vr in ["OB", "UI", "FD", "DS"] {
            let file = try instance { b in b.text(0x0018, 0x1210, vr, "Doe^John") }
            #expect(findings(file, review: true).contains { $0.hasPrefix("(0018,1210) ConvolutionKernel: kept text") }, "\(vr)")
        }
        let numbers = try instance(options: ["113106", "113108"]) { b in
            b.text(0x0008, 0x0020, "DA", "Doe^John")
            b.text(0x0010, 0x1010, "AS", "JDOE")
            b.text(0x0018, 0x0050, "DS", "JOHN\\1.5")
            b.text(0x0020, 0x0013, "IS", "Doe^John, born 1961")
        }
        let policy = DeidentificationPolicy(acceptedOptions: [.retainLongitudinalFullDates, .retainPatientCharacteristics])
        #expect(findings(numbers, policy, review: true) == [
            "(0008,0020) StudyDate: holds a DA value with characters a DA cannot hold",
            "(0010,1010) PatientAge: holds a AS value with characters a AS cannot hold",
            "(0018,0050) SliceThickness: holds a DS value with characters a DS cannot hold",
            "(0020,0013) InstanceNumber: holds a IS value with characters a IS cannot hold",
        ])
        let fine = try instance(options: ["113106", "113108"]) { b in
            b.text(0x0008, 0x0020, "DA", "20240102")
            b.text(0x0010, 0x1010, "AS", "045Y")
            b.text(0x0018, 0x0050, "DS", "1.25\\-2E3")
            b.text(0x0020, 0x0013, "IS", "+12")
        }
        #expect(findings(fine, policy, review: true) == [])
        // Bytes UTF-8 cannot decode would all read as U+FFFD: not reviewable.
        let undecodable = try instance { b in
            b.text(0x0008, 0x0005, "CS", "ISO_IR 192")
            b.element(0x0018, 0x1210, "SH", [0x42, 0x33, 0xED, 0xA0, 0x80, 0x44])
        }
        #expect(findings(undecodable, review: true)
            == ["(0018,1210) ConvolutionKernel: holds bytes its character set cannot decode, which cannot be reviewed"])
    }
}
