#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Tokenize

// MARK: - Read-only memory map
//
// Raw mmap rather than `Data(contentsOf:options:.mappedIfSafe)`: on Linux the
// latter reads the whole file (toolchain.md §4). Loaders convert each tensor to
// F32 and then `release(range)` its source pages, so a checkpoint is never
// resident twice.

public final class MappedFile {
    public let path: String
    public let size: Int
    public let base: UnsafeRawPointer
    private let fd: Int32

    public init(path: String) throws {
        self.path = path
        // Opened without blocking and type-checked on the descriptor: a FIFO or device
        // given as a model file is refused instead of hanging the run (InputFile).
        let (fd, size): (Int32, Int)
        do { (fd, size) = try InputFile.openRegular(path) } catch let e as InputFileError { throw ModelError(e) }
        guard size > 0 else {
            close(fd)
            throw ModelError.unreadable(path: path, reason: "file is empty")
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            close(fd)
            throw ModelError.unreadable(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        self.fd = fd
        self.size = size
        self.base = UnsafeRawPointer(p)
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), size)
        close(fd)
    }

    /// Bytes `[offset, offset + count)` as a buffer; caller has validated the range.
    public func bytes(_ offset: Int, _ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + offset, count: count)
    }

    /// Drop resident pages of a range that has been consumed (page-aligned inside).
    public func release(_ offset: Int, _ count: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (offset + page - 1) / page * page
        let end = (offset + count) / page * page
        if end > start {
            madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, Int32(MADV_DONTNEED))
        }
    }

    // Little-endian scalar reads (the formats we read are all little-endian).
    @inline(__always) public func u8(_ o: Int) -> UInt8 { base.load(fromByteOffset: o, as: UInt8.self) }
    @inline(__always) public func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
    @inline(__always) public func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
    @inline(__always) public func i32(_ o: Int) -> Int32 { Int32(bitPattern: u32(o)) }
    @inline(__always) public func f32(_ o: Int) -> Float { Float(bitPattern: u32(o)) }
}

// MARK: - Half-precision conversion
//
// Bit-level conversions: without F16C codegen flags `Float(Float16)` becomes a
// soft-float call per value (10× slower, toolchain.md §4).

@inline(__always)
public func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int((h >> 10) & 0x1F)
    let mant = UInt32(h & 0x3FF)
    if exp == 0 {
        if mant == 0 { return Float(bitPattern: sign) }
        // Subnormal half: value = mant · 2⁻²⁴.
        let v = Float(mant) * (1.0 / 16_777_216.0)
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | (UInt32(exp + 112) << 23) | (mant << 13))
}

@inline(__always)
public func bf16ToFloat(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

/// Round-to-nearest-even Float → IEEE half bits.
@inline(__always)
public func floatToHalf(_ f: Float) -> UInt16 {
    let x = f.bitPattern
    let sign = UInt16((x >> 16) & 0x8000)
    let exp = Int((x >> 23) & 0xFF)
    var mant = x & 0x7F_FFFF
    if exp == 255 { return sign | 0x7C00 | (mant != 0 ? 0x200 : 0) }
    var e = exp - 127 + 15
    if e >= 31 { return sign | 0x7C00 }
    if e <= 0 {
        if e < -10 { return sign }
        mant |= 0x80_0000
        let shift = UInt32(14 - e)
        var m = mant >> shift
        let rem = mant & ((1 << shift) - 1), half = UInt32(1) << (shift - 1)
        if rem > half || (rem == half && (m & 1) != 0) { m += 1 }
        return sign | UInt16(m)
    }
    var m = mant >> 13
    let rem = mant & 0x1FFF
    if rem > 0x1000 || (rem == 0x1000 && (m & 1) != 0) {
        m += 1
        if m == 0x400 { m = 0; e += 1; if e >= 31 { return sign | 0x7C00 } }
    }
    return sign | UInt16(e << 10) | UInt16(m)
}

@inline(__always)
public func floatToBF16(_ f: Float) -> UInt16 {
    let x = f.bitPattern
    if f.isNaN { return UInt16(x >> 16) | 0x40 }
    let rounding = 0x7FFF + ((x >> 16) & 1)
    return UInt16((x &+ rounding) >> 16)
}

// MARK: - Whole-file reads of user inputs

/// The content of an input file (corpus, prompts, JSON side files) as the model side reports
/// errors: a regular file is required (a FIFO would block, a device never end; InputFile),
/// at most `limit` bytes, failures as `ModelError` naming the path.
public func readInputFile(_ path: String, limit: Int = 1 << 32) throws -> Data {
    do { return try InputFile.read(path, limit: limit) } catch let e as InputFileError { throw ModelError(e) }
}
