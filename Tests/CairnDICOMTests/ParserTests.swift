import Foundation
import Testing
@testable import CairnDICOM

/// Builds small Part 10 files in memory, so each test states exactly the bytes it feeds the parser.
struct Part10Builder {
    var bytes: [UInt8] = Array(repeating: 0, count: 128) + Array("DICM".utf8)
    var bigEndian = false
    var explicit = true

    mutating func u16(_ v: UInt16) { bytes += bigEndian ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8)] }
    mutating func u32(_ v: UInt32) {
        let le = [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)]
        bytes += bigEndian ? le.reversed() : le
    }

    mutating func element(_ group: UInt16, _ element: UInt16, _ vr: String, _ value: [UInt8]) {
        u16(group)
        u16(element)
        if explicit {
            bytes += Array(vr.utf8)
            if VR(rawValue: vr)!.hasLongLength {
                bytes += [0, 0]
                u32(UInt32(value.count))
            } else {
                u16(UInt16(value.count))
            }
        } else {
            u32(UInt32(value.count))
        }
        bytes += value
    }

    mutating func text(_ group: UInt16, _ element: UInt16, _ vr: String, _ value: String) {
        var data = Array(value.utf8)
        if data.count % 2 == 1 { data.append(vr == "UI" ? 0 : 0x20) }
        self.element(group, element, vr, data)
    }

    mutating func meta(transferSyntax: String) {
        let saved = (bigEndian, explicit)
        (bigEndian, explicit) = (false, true)
        text(0x0002, 0x0010, "UI", transferSyntax)
        (bigEndian, explicit) = saved
    }
}

@Suite struct ParserTests {
    @Test func readsExplicitLittleEndian() throws {
        var b = Part10Builder()
        b.meta(transferSyntax: "1.2.840.10008.1.2.1")
        b.text(0x0008, 0x0060, "CS", "CT")
        b.text(0x0010, 0x0010, "PN", "Doe^Jane")
        b.element(0x0028, 0x0010, "US", [0x00, 0x02])
        let file = try DicomParser().parse(bytes: b.bytes)
        #expect(file.dataSet.string("Modality") == "CT")
        #expect(file.dataSet.integer("Rows") == 512)
        #expect(DicomJSON.encode(file.dataSet) ==
            #"{"00080060":{"vr":"CS","Value":["CT"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Doe^Jane"}]},"00280010":{"vr":"US","Value":[512]}}"#)
    }

    @Test func readsImplicitAndBigEndian() throws {
        var implicit = Part10Builder()
        implicit.meta(transferSyntax: "1.2.840.10008.1.2")
        implicit.explicit = false
        implicit.element(0x0028, 0x0010, "US", [0x00, 0x01])
        implicit.text(0x0020, 0x0013, "IS", "42")
        let a = try DicomParser().parse(bytes: implicit.bytes)
        #expect(a.dataSet.integer("Rows") == 256)
        #expect(a.dataSet.integer("InstanceNumber") == 42)
        var big = Part10Builder()
        big.meta(transferSyntax: "1.2.840.10008.1.2.2")
        big.bigEndian = true
        big.element(0x0028, 0x0010, "US", [0x01, 0x00])
        let b = try DicomParser().parse(bytes: big.bytes)
        #expect(b.dataSet.integer("Rows") == 256)
    }

    @Test func readsNestedUndefinedLengthSequences() throws {
        var b = Part10Builder()
        b.meta(transferSyntax: "1.2.840.10008.1.2.1")
        // (0008,1115) SQ undefined length > item undefined length > (0008,1140) SQ > item > (0008,1155) UI
        b.u16(0x0008); b.u16(0x1115); b.bytes += Array("SQ".utf8) + [0, 0]; b.u32(0xFFFF_FFFF)
        b.u16(0xFFFE); b.u16(0xE000); b.u32(0xFFFF_FFFF)
        b.u16(0x0008); b.u16(0x1140); b.bytes += Array("SQ".utf8) + [0, 0]; b.u32(0xFFFF_FFFF)
        b.u16(0xFFFE); b.u16(0xE000); b.u32(0xFFFF_FFFF)
        b.text(0x0008, 0x1155, "UI", "1.2.3")
        b.u16(0xFFFE); b.u16(0xE00D); b.u32(0)
        b.u16(0xFFFE); b.u16(0xE0DD); b.u32(0)
        b.u16(0xFFFE); b.u16(0xE00D); b.u32(0)
        b.u16(0xFFFE); b.u16(0xE0DD); b.u32(0)
        b.text(0x0010, 0x0020, "LO", "P1")
        let file = try DicomParser().parse(bytes: b.bytes)
        guard case .sequence(let outer) = file.dataSet[DicomTag(0x0008, 0x1115)]?.value,
              case .sequence(let inner) = outer.first?[DicomTag(0x0008, 0x1140)]?.value else {
            Issue.record("sequences not parsed")
            return
        }
        #expect(inner.first?.string("ReferencedSOPInstanceUID") == "1.2.3")
        #expect(file.dataSet.string("PatientID") == "P1")
    }

    @Test func refusesHostileInputWithAnOffset() throws {
        var b = Part10Builder()
        b.meta(transferSyntax: "1.2.840.10008.1.2.1")
        b.u16(0x0010); b.u16(0x0010); b.bytes += Array("UT".utf8) + [0, 0]; b.u32(0xFFFF_FFF0)
        b.bytes += Array("short".utf8)
        #expect(throws: DicomError.self) { try DicomParser().parse(bytes: b.bytes) }
        do {
            _ = try DicomParser().parse(bytes: b.bytes)
        } catch let error as DicomError {
            #expect(error.description.contains("runs past the end"))
        }
        // Endless nesting stops at the depth limit instead of exhausting the stack.
        var deep = Part10Builder()
        deep.meta(transferSyntax: "1.2.840.10008.1.2.1")
        for _ in 0..<10_000 {
            deep.u16(0x0008); deep.u16(0x1115); deep.bytes += Array("SQ".utf8) + [0, 0]; deep.u32(0xFFFF_FFFF)
            deep.u16(0xFFFE); deep.u16(0xE000); deep.u32(0xFFFF_FFFF)
        }
        #expect(throws: DicomError.tooDeep(offset: 132 + 28 + 33 * 20, limit: 32)) { try DicomParser().parse(bytes: deep.bytes) }
        // Truncation at every length never crashes.
        var whole = Part10Builder()
        whole.meta(transferSyntax: "1.2.840.10008.1.2.1")
        whole.text(0x0010, 0x0010, "PN", "Doe^John")
        whole.text(0x0020, 0x000D, "UI", "1.2.3.4")
        for cut in 0..<whole.bytes.count {
            _ = try? DicomParser().parse(bytes: Array(whole.bytes[0..<cut]))
        }
        #expect(throws: DicomError.self) { try DicomParser().parse(bytes: Array(repeating: 0x41, count: 1000)) }
    }

    @Test func decodesCharacterSets() {
        let latin1 = CharacterSetDecoder(terms: ["ISO_IR 100"])
        #expect(latin1.decode([0x4D, 0xFC, 0x6C, 0x6C, 0x65, 0x72][...]) == "Müller")
        let utf8 = CharacterSetDecoder(terms: ["ISO_IR 192"])
        #expect(utf8.decode(Array("Ærøskøbing".utf8)[...]) == "Ærøskøbing")
        // ISO 2022 IR 87: "Yamada^Tarou=山田^太郎" with JIS X 0208 escapes (PS3.5 H.3.1).
        let japanese = CharacterSetDecoder(terms: ["", "ISO 2022 IR 87"])
        let bytes: [UInt8] = Array("Yamada^Tarou=".utf8) + [0x1B, 0x24, 0x42, 0x3B, 0x33, 0x45, 0x44, 0x1B, 0x28, 0x42, 0x5E,
                                                              0x1B, 0x24, 0x42, 0x42, 0x40, 0x4F, 0x3A, 0x1B, 0x28, 0x42]
        #expect(japanese.decode(bytes[...]) == "Yamada^Tarou=山田^太郎")
    }
}
