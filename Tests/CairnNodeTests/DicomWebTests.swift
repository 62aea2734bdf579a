import CairnTestSupport
import CairnDICOM
import CairnHTTP
@testable import CairnStore
import Foundation
import Testing
@testable import CairnNode

@Suite struct QidoQueryTests {
    func parse(_ items: [(String, String)], level: QueryLevel = .instance, study: String? = nil) throws -> QidoQuery {
        try QidoQuery(level: level, items: items.map { (name: $0.0, value: $0.1) }, study: study)
    }

    @Test func matchingKeysByKeywordOrTag() throws {
        let query = try parse([("PatientID", "SUBJ-*"), ("00080060", "CT"), ("StudyDate", "20200101-20201231"),
                               ("StudyInstanceUID", "1.2.3,1.2.4"), ("SeriesNumber", "3"), ("AccessionNumber", "A1")])
        #expect(query.query.conditions == [
            .init(.patientID, .value("SUBJ-*", wildcard: true)), .init(.modality, .value("CT", wildcard: false)),
            .init(.studyDate, .range(lower: "20200101", upper: "20201231")), .init(.studyUID, .any(["1.2.3", "1.2.4"])),
            .init(.seriesNumber, .integer(3)), .init(.accessionNumber, .value("A1", wildcard: false)),
        ])
        #expect(query.query.limit == QidoQuery.defaultLimit && query.query.offset == 0 && query.warnings.isEmpty)
        #expect(try parse([("StudyDate", "-20201231")]).query.conditions == [.init(.studyDate, .range(lower: nil, upper: "20201231"))])
        #expect(try parse([("StudyDate", "20200101-")]).query.conditions == [.init(.studyDate, .range(lower: "20200101", upper: nil))])
        #expect(try parse([("StudyTime", "0800-123000.5")]).query.conditions == [.init(.studyTime, .range(lower: "0800", upper: "123000.5"))])
        #expect(try parse([("Modality", "CT,MR")]).query.conditions == [.init(.modality, .any(["CT", "MR"]))])
        #expect(try parse([("ModalitiesInStudy", "MR")]).query.conditions == [.init(.modality, .value("MR", wildcard: false))])
        #expect(try parse([("StudyDescription", "*liver*"), ("00080090", "Doe^J")]).query.conditions
                == [.init(.studyDescription, .value("*liver*", wildcard: true)), .init(.referringPhysician, .value("Doe^J", wildcard: false))])
        // An empty value is universal matching: no condition.
        #expect(try parse([("PatientID", "")]).query.conditions.isEmpty)
        // The path's UIDs become conditions.
        #expect(try parse([], level: .series, study: "1.2.840.1").query.conditions == [.init(.studyUID, .any(["1.2.840.1"]))])
    }

    @Test func pagingAndWarnings() throws {
        let query = try parse([("limit", "5000"), ("offset", "20"), ("fuzzymatching", "true"), ("includefield", "all"),
                               ("includefield", "StudyDescription,00081030,PatientWeight")])
        #expect(query.query.limit == QidoQuery.maximumLimit && query.query.offset == 20)
        #expect(query.warnings.count == 3)
        #expect(query.warnings.contains { $0.contains("fuzzymatching parameter is not supported") })
        #expect(query.warnings.contains { $0.contains("PatientWeight") && !$0.contains("StudyDescription") })
    }

    @Test func refusedQueriesSayWhy() {
        let cases: [([(String, String)], String)] = [
            ([("NotAKeyword", "1")], "unknown query key"),
            ([("PatientAge", "040Y")], "not supported"),
            ([("ReferencedSeriesSequence.SeriesInstanceUID", "1.2")], "inside sequences"),
            ([("StudyInstanceUID", "1.2.x")], "not a UID"),
            ([("StudyInstanceUID", "1..2")], "not a UID"),
            ([("StudyInstanceUID", String(repeating: "1", count: 65))], "not a UID"),
            ([("StudyDate", "2020-01-01")], "not a value or range"),
            ([("StudyDate", "20201301")], "not a value or range"),
            ([("StudyDate", "-")], "no bound"),
            ([("StudyTime", "25:00")], "not a value or range"),
            ([("Modality", "ct;drop")], "not a modality"),
            ([("SeriesNumber", "three")], "integer"),
            ([("limit", "0")], "limit"),
            ([("limit", "-1")], "limit"),
            ([("offset", "x")], "offset"),
            ([("fuzzymatching", "maybe")], "fuzzymatching"),
            ([("includefield", "NoSuchField")], "unknown query key"),
        ]
        for (items, words) in cases {
            do {
                _ = try parse(items)
                Issue.record("\(items) was accepted")
            } catch let error as APIError {
                #expect(error.status == .badRequest && error.detail.contains(words), "\(items): \(error.detail)")
            } catch {
                Issue.record("\(items): \(error)")
            }
        }
    }

    @Test func wildcardsBecomeEscapedGlobPatterns() {
        let query = InstanceQuery(level: .instance, conditions: [.init(.patientName, .value("Doe^J[oh]n*", wildcard: true))], limit: 10)
        let (sql, arguments) = query.whereClause(.sqlite)
        #expect(sql == " AND i.patient_name GLOB ?")
        #expect(arguments.count == 1 && (arguments[0] as? String) == "Doe^J[[]oh]n*")
        let (postgres, patterns) = query.whereClause(.postgres)
        #expect(postgres == " AND i.patient_name LIKE ? ESCAPE '\\'")
        #expect(patterns.count == 1 && (patterns[0] as? String) == "Doe^J[oh]n%")
    }
}

@Suite struct FrameLayoutCacheTests {
    func layout(_ frames: Int) -> FrameLayout {
        FrameLayout(frames: (0..<frames).map { [UInt64($0 * 10)..<UInt64($0 * 10 + 10)] }, transferSyntax: "1.2.840.10008.1.2.4.90",
                    mediaType: "image/jp2")
    }

    @Test func parsesOnceAndStaysWithinItsBound() throws {
        let cache = FrameLayoutCache(maxBytes: FrameLayoutCache.cost(layout(60)) + FrameLayoutCache.cost(layout(30)))
        let a = BlobDigest(parsing: "sha256:" + String(repeating: "a", count: 64))!, b = BlobDigest(parsing: "sha256:" + String(repeating: "b", count: 64))!
        var made = 0
        _ = try cache.layout(for: a) { made += 1; return layout(60) }
        #expect(try cache.layout(for: a) { made += 1; return layout(60) }.frames.count == 60)
        #expect(made == 1)
        // Room for b only by letting a go.
        _ = try cache.layout(for: b) { made += 1; return layout(50) }
        _ = try cache.layout(for: a) { made += 1; return layout(60) }
        #expect(made == 3)
        // A layout larger than the whole bound is served, not kept; a failed parse is not kept.
        _ = try cache.layout(for: b) { made += 1; return layout(500) }
        struct Failure: Error {}
        #expect(throws: Failure.self) { try cache.layout(for: BlobDigest(parsing: "sha256:" + String(repeating: "c", count: 64))!) { throw Failure() } }
    }
}

@Suite struct DicomWebMetricLabelTests {
    @Test func onlyServedShapesBecomeLabels() {
        #expect(RequestMetricsMiddleware.route(of: "/dicomweb/ct/studies") == "/dicomweb/{dataset}/studies")
        #expect(RequestMetricsMiddleware.route(of: "/dicomweb/ct/studies/1.2/series/3.4/instances/5.6/frames/1,2")
                == "/dicomweb/{dataset}/studies/{}/series/{}/instances/{}/frames/{}")
        #expect(RequestMetricsMiddleware.route(of: "/dicomweb/ct/studies/1.2/series/3.4/instances/5.6/bulkdata/ab/1-2")
                == "/dicomweb/{dataset}/studies/{}/series/{}/instances/{}/bulkdata/{}/{}")
        for path in ["/dicomweb/ct/x/y/z", "/dicomweb/ct/studies/1/series/2/instances/3/frames/1/a/b", "/dicomweb/ct/series/series/series"] {
            #expect(RequestMetricsMiddleware.route(of: path) == "/dicomweb/other", "\(path)")
        }
    }
}

@Suite struct MediaRangeTests {
    @Test func acceptHeadersAsDicomwebClientsSendThem() {
        let ranges = MediaRange.parseAccept(#"multipart/related; type="application/dicom"; transfer-syntax=*, application/json;q=0.5, image/png;q=0"#)
        #expect(ranges.count == 2)
        #expect(ranges[0].partType == "application/dicom" && ranges[0].transferSyntax == "*")
        #expect(ranges[1].mediaType == "application/json" && ranges[1].quality == 0.5)
        #expect(MediaRange.parseAccept(nil).first?.partType == "*/*")
        #expect(MediaRange.parseAccept("multipart/related").first?.partType == "*/*")
        #expect(MediaRange.parse("image/*")?.admits("image/jls") == true)
        #expect(MediaRange.parse("image/*")?.admits("application/octet-stream") == false)
        #expect(MediaRange.parse("*/*")?.admits("application/dicom+json") == true)
        #expect(MediaRange.parse("nonsense") == nil)
        // A quoted comma does not split the header.
        #expect(MediaRange.parseAccept(#"multipart/related; type="a,b", */*"#).count == 2)
        // Most preferred first, ties in the client's order.
        #expect(MediaRange.parseAccept("a/b;q=0.2, c/d, e/f;q=0.2, g/h").map(\.mediaType) == ["c/d", "g/h", "a/b", "e/f"])
    }
}

@Suite struct MultipartTests {
    func read(_ body: [UInt8], boundary: String, pieces: [Int]) throws -> (parts: [([String: String], [UInt8])], finished: Bool) {
        var reader = MultipartReader(boundary: boundary)
        var parts: [([String: String], [UInt8])] = []
        var start = 0
        for length in pieces + [body.count] where start < body.count {
            let end = min(body.count, start + length)
            try body[start..<end].withUnsafeBytes { bytes in
                try reader.feed(bytes) { event in
                    switch event {
                    case .partStart(let headers): parts.append((headers, []))
                    case .body(let piece): parts[parts.count - 1].1.append(contentsOf: piece)
                    case .partEnd: break
                    }
                }
            }
            start = end
        }
        return (parts, reader.finished)
    }

    /// Random parts (bytes drawn to include CR, LF, '-' and pieces of the boundary), a random
    /// preamble and epilogue, fed in random pieces: every part comes back whole, headers included.
    @Test func randomBodiesInRandomPiecesComeBackWhole() throws {
        let seed = UInt64.random(in: 0...UInt64(UInt32.max))
        print("MultipartTests seed \(seed)")
        var rng = SeededRandom(seed: seed)
        let boundary = "b-\(seed)"
        let alphabet = Array("\r\n-".utf8) + Array(boundary.utf8) + [0, 255, 65]
        for round in 0..<300 {
            let count = Int.random(in: 1...4, using: &rng)
            let contents = (0..<count).map { _ in
                (0..<Int.random(in: 0...300, using: &rng)).map { _ in alphabet.randomElement(using: &rng) ?? 0 }
            }
            let framing = "--\(boundary)"
            var body = Array("preamble \r\n".utf8).filter { _ in Bool.random(using: &rng) }
            for (index, content) in contents.enumerated() {
                body += Array("\(index == 0 && body.isEmpty ? "" : "\r\n")\(framing)\r\nContent-Type: application/dicom\r\nX-Index: \(index)\r\n\r\n".utf8)
                body += content
            }
            body += Array("\r\n\(framing)--\r\nepilogue".utf8)
            let pieces = (0..<Int.random(in: 0...20, using: &rng)).map { _ in Int.random(in: 1...64, using: &rng) }
            let (parts, finished) = try read(body, boundary: boundary, pieces: pieces)
            #expect(finished, "round \(round), seed \(seed)")
            #expect(parts.map(\.1) == contents, "round \(round), seed \(seed)")
            #expect(parts.enumerated().allSatisfy { $1.0["x-index"] == String($0) && $1.0["content-type"] == "application/dicom" },
                    "round \(round), seed \(seed)")
            // Cut anywhere before the closing delimiter: never finished, and no part longer than sent.
            let cut = Int.random(in: 0..<(body.count - "-\r\nepilogue".utf8.count), using: &rng)
            let (partial, done) = try read(Array(body[..<cut]), boundary: boundary, pieces: pieces)
            #expect(!done, "round \(round), seed \(seed)")
            #expect(zip(partial.map(\.1), contents).allSatisfy { $0.count <= $1.count })
        }
    }

    @Test func malformedFramingIsAnError() throws {
        #expect(throws: MultipartReader.Failure.self) {
            _ = try read(Array("--b\r\nA: 1\r\n\r\nx\r\n--bXX".utf8), boundary: "b", pieces: [])
        }
        let endless = Array("--b\r\n".utf8) + Array(repeating: UInt8(65), count: MultipartReader.maxHeaderBytes + 10)
        #expect(throws: MultipartReader.Failure.self) { _ = try read(endless, boundary: "b", pieces: [4096]) }
        // A part without headers is fine.
        let (parts, finished) = try read(Array("--b\r\n\r\nbody\r\n--b--".utf8), boundary: "b", pieces: [1, 1, 1])
        #expect(finished && parts.count == 1 && parts[0].1 == Array("body".utf8) && parts[0].0.isEmpty)
    }

    @Test func framingLengthIsWhatIsWritten() {
        let framing = MultipartFraming()
        let parts: [(contentType: String, length: UInt64)] = [("application/dicom; transfer-syntax=1.2.840.10008.1.2.1", 10),
                                                             ("application/octet-stream", 0), ("image/jls", 7)]
        var written = 0
        for (index, part) in parts.enumerated() {
            written += framing.partHead(index: index, contentType: part.contentType, length: part.length).utf8.count + Int(part.length)
        }
        written += framing.closing.utf8.count
        #expect(framing.bodyLength(parts) == UInt64(written))
    }
}
