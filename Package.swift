// swift-tools-version:6.0
import PackageDescription

// Release builds use -Ounchecked: the hot loops (dequantisation, softmax, RoPE,
// relevance accumulation) index flat buffers, and overflow checks stop them
// from vectorising (measured in ../shared/notes/toolchain.md §2).
// Architecture flags apply only where they exist. The manifest is compiled for
// the machine running SwiftPM, so `arch()` here is the host's (cross builds would
// need their own flags).
// - x86-64: -target-cpu haswell (AVX2, FMA, F16C: x86-64-v3; every x86 server or
//   desktop since 2013–2015 has it). Without it, F16 conversion is a soft-float
//   call per value and SIMD `addProduct` a libm call per lane (toolchain.md §2, §4).
//   The binary then needs AVX2+FMA: BLASKernelCheck stops with an error on a CPU
//   without them instead of crashing with SIGILL.
// - arm64 (Graviton, Ampere, Apple silicon under Linux): the baseline already has
//   NEON and FMA; no flag. Every SIMD path uses Swift's portable SIMD types.
#if arch(x86_64)
let archFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"]), .define("WORKBENCH_X86_64_V3")]
#else
let archFlags: [SwiftSetting] = []
#endif

let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked"], .when(configuration: .release)),
] + archFlags

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
        // SHA-256 with the x86 SHA extensions (checksums of 0.4–0.8 GB files); -O2 also in debug
        // builds so the test suite does not crawl through unoptimised intrinsics.
        .target(name: "CSHA256", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "Transformer", dependencies: ["COpenBLAS", "Tokenize", "CSHA256"], swiftSettings: fast),
        .target(name: "Circuits", dependencies: ["Transformer", "Tokenize"], swiftSettings: fast),
        .executableTarget(name: "workbench", dependencies: ["Transformer", "Tokenize", "Circuits"], swiftSettings: fast),
        // Test plumbing shared by every test target: Assets, Fixtures, Scratch, WorkbenchCLI.
        .target(name: "TestSupport", dependencies: ["Transformer"], path: "Tests/TestSupport"),
        .testTarget(name: "TokenizeTests", dependencies: ["Tokenize", "TestSupport"]),
        .testTarget(name: "TransformerTests", dependencies: ["Transformer", "Tokenize", "TestSupport"]),
        .testTarget(name: "CircuitsTests", dependencies: ["Circuits", "Transformer", "TestSupport"]),
        // The CLI as a user runs it; depending on the executable makes `swift test` build it first.
        .testTarget(name: "WorkbenchTests", dependencies: ["workbench", "Circuits", "Transformer", "Tokenize", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5],
    cxxLanguageStandard: .cxx17
)
