import CairnTestSupport
import Foundation
import Testing
@testable import CairnStore

@Suite struct TempFileWriterTests {
    /// Random append sizes around the 4 KiB alignment and the staging size, direct and buffered.
    @Test(arguments: [true, false])
    func appendsReadBackExactly(preferDirect: Bool) throws {
        let temp = try TempStore()
        defer { temp.cleanup() }
        let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: TempFileWriter.alignment)
        defer { staging.deallocate() }
        var rng = SeededRandom(seed: preferDirect ? 1 : 2)
        for round in 0..<20 {
            let path = temp.root + "/tmp/t\(round)"
            let writer = try TempFileWriter(path: path, staging: staging, preferDirect: preferDirect)
            if !preferDirect { #expect(!writer.isDirect) }
            var expected: [UInt8] = []
            for _ in 0..<Int(rng.next() % 12) {
                let size = [0, 1, 4095, 4096, 4097, 65_535, 65_536, 200_001][Int(rng.next() % 8)]
                let chunk = Bytes.random(size, seed: rng.next())
                try chunk.withUnsafeBytes { try writer.append($0) }
                expected += chunk
            }
            try writer.finish()
            #expect(writer.length == UInt64(expected.count))
            #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) == expected)
        }
    }
}
