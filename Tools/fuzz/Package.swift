// swift-tools-version:6.1
// libFuzzer target for the DICOM parser, kept out of the main build. Build and run:
//   Tools/fuzz/run.sh [SECONDS]
import PackageDescription

let package = Package(
    name: "CairnFuzz",
    dependencies: [.package(path: "../..")],
    targets: [
        .executableTarget(
            name: "FuzzDicomParser",
            dependencies: [.product(name: "CairnDICOM", package: "main")]),
    ],
    swiftLanguageModes: [.v6]
)
