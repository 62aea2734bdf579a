// swift-tools-version:6.1
// libFuzzer targets, kept out of the main build: the DICOM parser, the de-identification gate,
// Range headers, tokens, the hub's snapshot intake, the entries query parameters and DICOMweb's
// multipart reader, QIDO-RS queries and Accept headers, and the blob format's frame decoder.
// Build and run: Tools/fuzz/run.sh [SECONDS] [TARGET]
import PackageDescription

let package = Package(
    name: "CairnFuzz",
    dependencies: [.package(path: "../.."), .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2")],
    targets: [
        .target(name: "FuzzSupport"),
        .executableTarget(name: "FuzzDicomParser", dependencies: ["FuzzSupport", .product(name: "CairnDICOM", package: "main")]),
        .executableTarget(name: "FuzzDeidGate", dependencies: ["FuzzSupport", .product(name: "CairnDICOM", package: "main")]),
        .executableTarget(name: "FuzzByteRanges", dependencies: ["FuzzSupport", .product(name: "CairnNode", package: "main")]),
        .executableTarget(name: "FuzzEntriesQuery",
                          dependencies: ["FuzzSupport", .product(name: "CairnNode", package: "main"),
                                         .product(name: "CairnStore", package: "main")]),
        .executableTarget(name: "FuzzDicomWeb",
                          dependencies: ["FuzzSupport", .product(name: "CairnNode", package: "main"),
                                         .product(name: "CairnStore", package: "main"), .product(name: "CairnDICOM", package: "main")]),
        .executableTarget(name: "FuzzBlobFrame", dependencies: ["FuzzSupport", .product(name: "CairnBlobs", package: "main")]),
        .executableTarget(name: "FuzzTokens",
                          dependencies: ["FuzzSupport", .product(name: "CairnAuth", package: "main"),
                                         .product(name: "CairnFoundation", package: "main"),
                                         .product(name: "Crypto", package: "swift-crypto")]),
        .executableTarget(name: "FuzzHubIntake",
                          dependencies: ["FuzzSupport", .product(name: "CairnHub", package: "main"),
                                         .product(name: "CairnAuth", package: "main"), .product(name: "CairnManifest", package: "main"),
                                         .product(name: "CairnFoundation", package: "main"),
                                         .product(name: "Crypto", package: "swift-crypto")]),
    ],
    swiftLanguageModes: [.v6]
)
