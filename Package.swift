// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Cairn",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cairn", targets: ["cairn"]),
        .library(name: "CairnStore", targets: ["CairnStore"]),
        .library(name: "CairnDICOM", targets: ["CairnDICOM"]),
        .library(name: "CairnBlobs", targets: ["CairnBlobs"]),
        // For the fuzz targets (Tools/fuzz), which build these modules with libFuzzer.
        .library(name: "CairnFoundation", targets: ["CairnFoundation"]),
        .library(name: "CairnAudit", targets: ["CairnAudit"]),
        .library(name: "CairnManifest", targets: ["CairnManifest"]),
        .library(name: "CairnAuth", targets: ["CairnAuth"]),
        .library(name: "CairnNode", targets: ["CairnNode"]),
        .library(name: "CairnHub", targets: ["CairnHub"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // Traits off: the node needs neither swift-configuration nor Foundation-only extras.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4", pkgConfig: "liblz4",
                       providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CXXHash", path: "Sources/CXXHash", pkgConfig: "libxxhash",
                       providers: [.apt(["libxxhash-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .target(name: "CPosix"),
        // libfuse3's low-level API (Debian libfuse3-dev); the shim wraps what Swift cannot call (macros).
        .target(name: "CFuse", linkerSettings: [.linkedLibrary("fuse3")]),
        // Hex, base64url, canonical JSON, durable SQLite opening, small-buffer zstd: nothing about blobs or HTTP.
        .target(
            name: "CairnFoundation",
            dependencies: ["CZstd", .product(name: "GRDB", package: "GRDB.swift")]),
        .target(
            name: "CairnAudit",
            dependencies: ["CairnFoundation", "CairnIndex", .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "CairnDICOM", dependencies: ["CZlib"]),
        // The EUCAIM federated search (samply Focus): query AST, code table, evaluation over facets; node and hub.
        .target(name: "CairnSearch", dependencies: ["CairnFoundation"]),
        // The blob file format: seek table, frame codecs, the pixel stage. No I/O, so it can be read, tested and fuzzed alone.
        .target(name: "CairnBlobs", dependencies: ["CZstd", "CLZ4", "CXXHash", "COpenJPH"]),
        // Lossless HTJ2K through OpenJPH's C++ API (Debian libopenjph-dev), behind a small C face.
        .target(name: "COpenJPH", linkerSettings: [.linkedLibrary("openjph")]),
        // S3 (SigV4 over AsyncHTTPClient) for the object-store blob backend: Ceph RGW, AWS, MinIO.
        .target(
            name: "CairnObjectStore",
            dependencies: [
                "CairnFoundation", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        // The index behind one seam: SQLite (GRDB, embedded default) or PostgreSQL (postgres-nio).
        .target(
            name: "CairnIndex",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "CairnStore",
            dependencies: [
                "CairnFoundation", "CairnAudit", "CairnIndex", "CairnDICOM", "CairnBlobs", "CairnObjectStore", "CZstd", "CLZ4", "CXXHash", "CPosix",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "CairnIngest", dependencies: ["CairnBlobs", "CairnStore", "CairnDICOM"]),
        // `cairn mount`: datasets as read-only folders of DICOM files, over FUSE.
        .target(
            name: "CairnMount",
            dependencies: ["CairnFoundation", "CairnBlobs", "CairnStore", "CairnAudit", "CFuse", "CXXHash",
                           .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log"),
                           .product(name: "Prometheus", package: "swift-prometheus")]),
        .target(
            name: "CairnManifest",
            dependencies: ["CairnFoundation", .product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "CairnAuth",
            dependencies: [
                "CairnFoundation", "CairnManifest",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ]),
        .target(
            name: "CairnHTTP",
            dependencies: [
                "CairnFoundation",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ]),
        .target(
            name: "CairnNode",
            dependencies: [
                "CairnFoundation", "CairnAudit", "CairnBlobs", "CairnStore", "CairnIngest", "CairnDICOM", "CairnManifest", "CairnHTTP",
                "CairnAuth", "CairnSearch", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "CairnHub",
            dependencies: [
                "CairnFoundation", "CairnIndex", "CairnAudit", "CairnManifest", "CairnHTTP", "CairnAuth", "CairnSearch",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "cairn",
            dependencies: [
                "CairnFoundation", "CairnAudit", "CairnBlobs", "CairnStore", "CairnIngest", "CairnDICOM", "CairnNode", "CairnManifest",
                "CairnHub", "CairnHTTP",
                "CairnAuth", "CPosix", "CairnMount",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(name: "cairn-bench", dependencies: ["CairnAudit", "CairnBlobs", "CairnStore", "CairnDICOM", "CairnIngest"], path: "Tools/bench/CairnBench"),
        // What the test targets share (a seeded generator), so each randomized test prints a reproducible seed.
        .target(name: "CairnTestSupport", path: "Tests/CairnTestSupport"),
        .testTarget(name: "CairnFoundationTests", dependencies: ["CairnFoundation", "CairnTestSupport"]),
        .testTarget(name: "CairnSearchTests", dependencies: ["CairnSearch", "CairnTestSupport"]),
        .testTarget(name: "CairnObjectStoreTests", dependencies: ["CairnObjectStore", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "CairnBlobsTests", dependencies: ["CairnBlobs", "COpenJPH", "CairnTestSupport"]),
        .testTarget(name: "CairnStoreTests", dependencies: ["CairnStore", "CairnIndex", "CairnBlobs", "CairnTestSupport", "CairnFoundation", "CairnAudit", "CairnIngest", "CairnObjectStore",
                                                       .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto")]),
        // Regressions/ holds fuzz inputs that the tests read from the source tree.
        .testTarget(name: "CairnDICOMTests", dependencies: ["CairnDICOM"], exclude: ["Regressions"]),
        .testTarget(name: "CairnMountTests", dependencies: ["CairnMount", "CairnBlobs", "CairnStore"]),
        .testTarget(name: "CairnIngestTests", dependencies: ["CairnIngest", "CairnStore", "CairnDICOM"]),
        .testTarget(name: "CairnManifestTests",
                    dependencies: ["CairnManifest", "CairnFoundation", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "CairnHubTests",
                    dependencies: ["CairnHub", "CairnHTTP", "CairnAuth", "CairnManifest", "CairnFoundation", "CairnSearch", "CairnTestSupport",
                                   .product(name: "GRDB", package: "GRDB.swift"),
                                   .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log"),
                           .product(name: "Prometheus", package: "swift-prometheus")]),
        .testTarget(
            name: "CairnNodeTests",
            dependencies: [
                "CairnNode", "CairnBlobs", "CairnStore", "CairnFoundation", "CairnAudit", "CairnTestSupport", "CairnManifest", "CairnHTTP", "CairnAuth",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "CairnHTTPTests",
            dependencies: [
                "CairnHTTP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
