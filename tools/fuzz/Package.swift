// swift-tools-version:6.0
import PackageDescription

// The fuzzing harness is a separate package so that the workbench's own build and
// tests never depend on it, and so that CI can run it without Python. It has no
// dependencies: it drives the release binary as a subprocess (a crash there must not
// take the harness down), and builds every seed input it needs itself.
let package = Package(
    name: "fuzz",
    products: [.executable(name: "fuzz", targets: ["fuzz"])],
    targets: [
        .executableTarget(name: "fuzz"),
    ],
    swiftLanguageModes: [.v5]
)
