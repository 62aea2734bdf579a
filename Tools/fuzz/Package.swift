// swift-tools-version:6.1
// libFuzzer targets, kept out of the main build: the DICOM parser and the de-identification gate.
// Build and run: Tools/fuzz/run.sh [SECONDS] [TARGET]
import PackageDescription

let package = Package(
    name: "CairnFuzz",
    dependencies: [.package(path: "../..")],
    targets: [
        .executableTarget(
            name: "FuzzDicomParser",
            dependencies: [.product(name: "CairnDICOM", package: "main")]),
        .executableTarget(
            name: "FuzzDeidGate",
            dependencies: [.product(name: "CairnDICOM", package: "main")]),
    ],
    swiftLanguageModes: [.v6]
)
