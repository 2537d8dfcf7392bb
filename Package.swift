// swift-tools-version:6.0
import PackageDescription

// Release builds use -Ounchecked: the hot loops (dequantisation, softmax, RoPE,
// relevance accumulation) index flat buffers, and overflow checks stop them
// from vectorising (measured in ../shared/notes/toolchain.md §2).
// -target-cpu haswell (AVX2, FMA, F16C; every x86 machine of this kind has
// them): without FMA codegen SIMD `addProduct` becomes a libm call per lane.
let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked"], .when(configuration: .release)),
    .unsafeFlags(["-target-cpu", "haswell"]),
]

let package = Package(
    name: "workbench",
    products: [
        .executable(name: "workbench", targets: ["workbench"]),
        .library(name: "Transformer", targets: ["Transformer"]),
        .library(name: "Tokenize", targets: ["Tokenize"]),
        .library(name: "Circuits", targets: ["Circuits"]),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .target(name: "CSentencePiece", linkerSettings: [.linkedLibrary("sentencepiece")]),
        .target(name: "Tokenize", dependencies: ["CSentencePiece"], swiftSettings: fast),
        .target(name: "Transformer", dependencies: ["COpenBLAS", "Tokenize"], swiftSettings: fast),
        .target(name: "Circuits", dependencies: ["Transformer", "Tokenize"], swiftSettings: fast),
        .executableTarget(name: "workbench", dependencies: ["Transformer", "Tokenize", "Circuits"], swiftSettings: fast),
        .testTarget(name: "TokenizeTests", dependencies: ["Tokenize"]),
        .testTarget(name: "TransformerTests", dependencies: ["Transformer", "Tokenize"]),
        .testTarget(name: "CircuitsTests", dependencies: ["Circuits", "Transformer"]),
    ],
    swiftLanguageModes: [.v5],
    cxxLanguageStandard: .cxx17
)
