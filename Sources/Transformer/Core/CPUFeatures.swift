import Foundation

// MARK: - What the CPU can run, as the kernel reports it
//
// Read from /proc/cpuinfo rather than CPUID: the kernel lists a feature only when
// the CPU has it *and* the OS has enabled its register state (XSAVE/XCR0), which is
// what a BLAS kernel needs to run — CPUID alone would also need an XGETBV check.
// It also needs no inline assembly or x86-only C helper, and the same file names
// the model, the clock and the physical cores (for the peak estimate) on x86-64
// and arm64 alike ("flags" on x86, "Features" on arm64).

/// The widest x86 vector ISA level a BLAS kernel can use.
public enum VectorTier: Int, Comparable, Sendable, CustomStringConvertible {
    case sse = 0, avx, avx2, avx512

    public static func < (a: VectorTier, b: VectorTier) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .sse: return "SSE"
        case .avx: return "AVX"
        case .avx2: return "AVX2+FMA"
        case .avx512: return "AVX-512"
        }
    }

    /// FP32 FLOPs per cycle per core at this width, assuming two vector pipes
    /// (FMA from AVX2 on: 2 pipes × lanes × 2). An upper bound: some parts
    /// have one 512-bit FMA pipe or run AVX-512 as two 256-bit halves (half of it).
    public var flopsPerCycle: Int {
        switch self {
        case .sse: return 8        // 4 lanes, one add pipe + one multiply pipe
        case .avx: return 16       // 8 lanes, add + multiply
        case .avx2: return 32      // 8 lanes × 2 FMA pipes × 2
        case .avx512: return 64    // 16 lanes × 2 FMA pipes × 2
        }
    }
}

public struct CPUFeatures: Sendable {
    public var modelName: String
    public var flags: Set<String>
    /// Distinct (physical id, core id) pairs; the processor count when those are absent.
    public var physicalCores: Int
    /// The clock the peak estimate uses, GHz, and where it came from.
    public var ghz: Double?
    public var clockSource: String

    public func has(_ f: String) -> Bool { flags.contains(f) }

    /// nil off x86 (no tier applies there: arm64 BLAS kernels are chosen differently).
    public var tier: VectorTier? {
        guard has("sse2") || has("sse") else { return nil }
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(has) { return .avx512 }
        if has("avx2") && has("fma") { return .avx2 }
        if has("avx") { return .avx }
        return .sse
    }

    /// The x86 features a reader cares about for BLAS, in ISA order.
    public var vectorFlags: [String] {
        ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
         "asimd", "sve", "sve2"].filter(has)
    }

    /// Parses the text of /proc/cpuinfo (x86 "flags" or arm64 "Features").
    public static func parse(cpuinfo: String, cpufreqMaxKHz: Double? = nil) -> CPUFeatures {
        var model = "", flags = Set<String>(), cores = Set<String>(), processors = 0
        var physical = "", mhz: Double = 0
        for line in cpuinfo.split(separator: "\n", omittingEmptySubsequences: false) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch key {
            case "processor": processors += 1
            case "model name", "Hardware": if model.isEmpty { model = value }
            case "flags", "Features": if flags.isEmpty { flags = Set(value.split(separator: " ").map(String.init)) }
            case "physical id": physical = value
            case "core id": cores.insert(physical + "/" + value)
            case "cpu MHz": mhz = max(mhz, Double(value) ?? 0)
            default: break
            }
        }
        var ghz: Double?, source = "unknown"
        if let k = cpufreqMaxKHz, k > 0 {
            ghz = k / 1e6; source = "cpufreq cpuinfo_max_freq"
        } else if mhz > 0 {
            ghz = mhz / 1000; source = "/proc/cpuinfo cpu MHz (in a VM often the nominal clock, not the turbo clock)"
        }
        return CPUFeatures(modelName: model.isEmpty ? "unknown CPU" : model, flags: flags,
                           physicalCores: max(1, cores.isEmpty ? processors : cores.count), ghz: ghz, clockSource: source)
    }

    /// This machine (empty features when /proc/cpuinfo cannot be read).
    public static let current: CPUFeatures = {
        let text = readProcFile("/proc/cpuinfo") ?? ""
        let khz = readProcFile("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
            .flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        return parse(cpuinfo: text, cpufreqMaxKHz: khz)
    }()

    /// Upper bound of the FP32 matmul rate: FLOPs/cycle of the widest vector
    /// unit × cores BLAS runs on × clock. nil when the tier or clock is unknown.
    public func peakEstimate(cores usable: Int) -> (gflops: Double, text: String)? {
        guard let tier, let ghz else { return nil }
        let n = max(1, min(usable, physicalCores))
        let g = Double(tier.flopsPerCycle * n) * ghz
        return (g, String(format: "%d FLOP/cycle (%@, 2 pipes) × %d core%@ × %.2f GHz (%@) = %.0f GFLOP/s",
                          tier.flopsPerCycle, tier.description, n, n == 1 ? "" : "s", ghz, clockSource, g))
    }
}

/// The whole text of a /proc or /sys file. These report size 0, and
/// `String(contentsOfFile:)` was seen to stop after the first 4 KB of
/// /proc/self/maps; reading to EOF in a loop gets all of it.
func readProcFile(_ path: String) -> String? {
    guard let h = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? h.close() }
    var data = Data()
    while let chunk = try? h.read(upToCount: 1 << 16), !chunk.isEmpty { data.append(chunk) }
    return String(decoding: data, as: UTF8.self)
}
