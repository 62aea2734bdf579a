// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Cairn",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cairn", targets: ["cairn"]),
        .library(name: "CairnStore", targets: ["CairnStore"]),
        .library(name: "CairnDICOM", targets: ["CairnDICOM"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
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
        .target(name: "CairnDICOM", dependencies: ["CZlib"]),
        .target(
            name: "CairnStore",
            dependencies: [
                "CZstd", "CLZ4", "CXXHash", "CPosix",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "CairnIngest", dependencies: ["CairnStore", "CairnDICOM"]),
        .executableTarget(
            name: "cairn",
            dependencies: [
                "CairnStore", "CairnIngest", "CairnDICOM",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(name: "cairn-bench", dependencies: ["CairnStore", "CairnDICOM", "CairnIngest"], path: "Tools/bench/CairnBench"),
        .testTarget(name: "CairnStoreTests", dependencies: ["CairnStore", "CairnIngest"]),
        // Regressions/ holds fuzz inputs that the tests read from the source tree.
        .testTarget(name: "CairnDICOMTests", dependencies: ["CairnDICOM"], exclude: ["Regressions"]),
        .testTarget(name: "CairnIngestTests", dependencies: ["CairnIngest", "CairnStore", "CairnDICOM"]),
    ],
    swiftLanguageModes: [.v6]
)
