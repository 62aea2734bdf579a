import CairnTestSupport
import Testing
@testable import CairnBlobs

@Suite struct SeekTableTests {
    @Test func roundTripsRandomTables() throws {
        var rng = SeededRandom(seed: 7)
        for _ in 0..<200 {
            let count = Int(rng.next() % 50)
            let entries = (0..<count).map { _ in
                SeekTable.Entry(compressedSize: UInt32(rng.next() % UInt64(SeekTable.maxFrameCompressedSize + 1)),
                                decompressedSize: UInt32(rng.next() % UInt64(SeekTable.maxFrameDecompressedSize + 1)),
                                checksum: UInt32(truncatingIfNeeded: rng.next()))
            }
            let table = SeekTable(entries: entries)
            let encoded = table.encoded()
            #expect(encoded.count == table.encodedSize)
            #expect(try SeekTable.parse(encoded) == table)
        }
    }

    /// No writer makes a frame past the largest frame size: such an entry is damage, refused
    /// before a reader sizes a buffer from it.
    @Test func oversizedFramesAreDamage() {
        let tooBig = SeekTable(entries: [.init(compressedSize: 100, decompressedSize: SeekTable.maxFrameDecompressedSize + 1, checksum: 0)])
        #expect(throws: SeekTable.ParseError.frameTooLarge(index: 0, compressed: 100, decompressed: SeekTable.maxFrameDecompressedSize + 1)) {
            try SeekTable.parse(tooBig.encoded())
        }
        let stored = SeekTable(entries: [.init(compressedSize: 10, decompressedSize: 10, checksum: 0),
                                         .init(compressedSize: UInt32.max, decompressedSize: 10, checksum: 0)])
        #expect(throws: SeekTable.ParseError.frameTooLarge(index: 1, compressed: UInt32.max, decompressed: 10)) {
            try SeekTable.parse(stored.encoded())
        }
    }

    @Test func layoutMatchesTheSeekableFormat() {
        let table = SeekTable(entries: [.init(compressedSize: 0x11223344, decompressedSize: 5, checksum: 0xAABBCCDD)])
        let bytes = table.encoded()
        #expect(Array(bytes[0..<4]) == [0x5E, 0x2A, 0x4D, 0x18])
        #expect(Array(bytes[4..<8]) == [21, 0, 0, 0])
        #expect(Array(bytes[8..<12]) == [0x44, 0x33, 0x22, 0x11])
        #expect(Array(bytes[16..<20]) == [0xDD, 0xCC, 0xBB, 0xAA])
        #expect(Array(bytes[20..<24]) == [1, 0, 0, 0])
        #expect(bytes[24] == 0x80)
        #expect(Array(bytes[25..<29]) == [0xB1, 0xEA, 0x92, 0x8F])
    }

    @Test func rejectsDamagedTables() {
        let good = SeekTable(entries: [.init(compressedSize: 1, decompressedSize: 2, checksum: 3)]).encoded()
        var badMagic = good
        badMagic[badMagic.count - 1] ^= 0xFF
        #expect(throws: SeekTable.ParseError.badFooterMagic) { try SeekTable.parse(badMagic) }
        var reserved = good
        reserved[reserved.count - 5] |= 0x04
        #expect(throws: SeekTable.ParseError.reservedBits) { try SeekTable.parse(reserved) }
        var noChecksums = good
        noChecksums[noChecksums.count - 5] = 0
        #expect(throws: SeekTable.ParseError.missingChecksums) { try SeekTable.parse(noChecksums) }
        var badHeader = good
        badHeader[0] ^= 1
        #expect(throws: SeekTable.ParseError.badHeader) { try SeekTable.parse(badHeader) }
        #expect(throws: SeekTable.ParseError.tooShort) { try SeekTable.parse(Array(good.dropFirst())) }
    }

    @Test func findsTheFrameHoldingAnOffset() {
        let table = SeekTable(entries: [10, 20, 5].map { .init(compressedSize: 1, decompressedSize: $0, checksum: 0) })
        #expect(table.frameIndex(containing: 0) == 0)
        #expect(table.frameIndex(containing: 9) == 0)
        #expect(table.frameIndex(containing: 10) == 1)
        #expect(table.frameIndex(containing: 29) == 1)
        #expect(table.frameIndex(containing: 30) == 2)
        #expect(table.frameIndex(containing: 34) == 2)
    }
}
