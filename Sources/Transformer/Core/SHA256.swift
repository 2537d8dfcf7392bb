import CSHA256
import Foundation
import Tokenize

// MARK: - SHA-256 (FIPS 180-4)
//
// Relevance files record the sha256 of the model file(s) and of the prompts
// file so a result can be traced to its inputs and `--resume` can refuse a
// checkpoint made from other inputs; relevance files and checkpoints also carry
// the sha256 of their own tensor data (`Safetensors.dataChecksumKey`) so a
// corrupted file is refused. Foundation on Linux has no CryptoKit and the
// package takes no dependencies, so this is a plain implementation. It hashes
// whole 64-byte blocks straight from the caller's buffer (no copy) because it
// runs over every byte of 0.4–0.8 GB files on each write and check.

/// Incremental SHA-256.
public struct SHA256 {
    private var h0: UInt32 = 0x6a09e667, h1: UInt32 = 0xbb67ae85, h2: UInt32 = 0x3c6ef372, h3: UInt32 = 0xa54ff53a
    private var h4: UInt32 = 0x510e527f, h5: UInt32 = 0x9b05688c, h6: UInt32 = 0x1f83d9ab, h7: UInt32 = 0x5be0cd19
    /// Bytes of an incomplete block (fewer than 64) waiting for more input.
    private var tail: [UInt8] = []
    private var length: UInt64 = 0

    /// The 64 round constants (FIPS 180-4 §4.2.2): one table, in the C target, shared by both paths.
    private static let k = UnsafeBufferPointer(start: wb_sha256_round_constants(), count: 64)

    public init() {}

    /// Feeds bytes.
    public mutating func update<D: DataProtocol>(_ data: D) {
        for region in data.regions { region.withUnsafeBytes { update($0) } }
    }

    /// Feeds bytes from a buffer; whole blocks are hashed in place.
    public mutating func update(_ raw: UnsafeRawBufferPointer) {
        guard var p = raw.baseAddress, raw.count > 0 else { return }
        var n = raw.count
        length &+= UInt64(n)
        if !tail.isEmpty {
            let take = min(64 - tail.count, n)
            tail.append(contentsOf: UnsafeRawBufferPointer(start: p, count: take))
            p += take; n -= take
            guard tail.count == 64 else { return }
            let block = tail
            block.withUnsafeBytes { compress($0.baseAddress!, blocks: 1) }
            tail.removeAll(keepingCapacity: true)
        }
        let whole = n / 64
        if whole > 0 { compress(p, blocks: whole); p += 64 * whole; n -= 64 * whole }
        if n > 0 { tail.append(contentsOf: UnsafeRawBufferPointer(start: p, count: n)) }
    }

    /// The digest as 64 lowercase hex characters (the hasher is spent afterwards).
    public mutating func finalizeHex() -> String {
        let bits = length &* 8
        var pad: [UInt8] = [0x80]
        while (tail.count + pad.count) % 64 != 56 { pad.append(0) }
        for i in (0..<8).reversed() { pad.append(UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8))) }
        update(pad)
        return [h0, h1, h2, h3, h4, h5, h6, h7].map { String(format: "%08x", $0) }.joined()
    }

    /// Whether blocks go through the x86 SHA extensions (`CSHA256`, ~5× faster; the Swift rounds
    /// below are the fallback and the reference it is tested against). Settable for tests.
    nonisolated(unsafe) static var useHardware = wb_sha256_ni_available() != 0

    private mutating func compress(_ p: UnsafeRawPointer, blocks: Int) {
        if Self.useHardware {
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 8) { st in
                st[0] = h0; st[1] = h1; st[2] = h2; st[3] = h3; st[4] = h4; st[5] = h5; st[6] = h6; st[7] = h7
                wb_sha256_ni_blocks(st.baseAddress!, p.assumingMemoryBound(to: UInt8.self), blocks)
                h0 = st[0]; h1 = st[1]; h2 = st[2]; h3 = st[3]; h4 = st[4]; h5 = st[5]; h6 = st[6]; h7 = st[7]
            }
            return
        }
        var s0 = h0, s1 = h1, s2 = h2, s3 = h3, s4 = h4, s5 = h5, s6 = h6, s7 = h7
        let k = Self.k
        do {
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
                for blk in 0..<blocks {
                    let q = p + 64 * blk
                    for i in 0..<16 { w[i] = UInt32(bigEndian: q.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
                    for i in 16..<64 {
                        let x = w[i - 15], y = w[i - 2]
                        let g0 = rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3)
                        let g1 = rotr(y, 17) ^ rotr(y, 19) ^ (y >> 10)
                        w[i] = w[i - 16] &+ g0 &+ w[i - 7] &+ g1
                    }
                    var a = s0, b = s1, c = s2, d = s3, e = s4, f = s5, g = s6, hh = s7
                    for i in 0..<64 {
                        let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k[i] &+ w[i]
                        let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
                        hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
                    }
                    s0 &+= a; s1 &+= b; s2 &+= c; s3 &+= d; s4 &+= e; s5 &+= f; s6 &+= g; s7 &+= hh
                }
            }
        }
        h0 = s0; h1 = s1; h2 = s2; h3 = s3; h4 = s4; h5 = s5; h6 = s6; h7 = s7
    }

    @inline(__always) private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    /// sha256 of bytes, as hex.
    public static func hex<D: DataProtocol>(_ data: D) -> String {
        var s = SHA256()
        s.update(data)
        return s.finalizeHex()
    }

    /// sha256 of a file's contents, read in 4 MB chunks.
    public static func hex(file path: String) throws -> String {
        // Opened through InputFile: a FIFO or device among the inputs is refused, not read forever.
        let fh: FileHandle
        do { fh = FileHandle(fileDescriptor: try InputFile.openRegular(path).fd, closeOnDealloc: true) } catch let e as InputFileError {
            throw ModelError(e)
        }
        defer { try? fh.close() }
        var s = SHA256()
        while true {
            let chunk: Data?
            do { chunk = try fh.read(upToCount: 4 << 20) } catch {
                throw ModelError.unreadable(path: path, reason: error.localizedDescription)
            }
            guard let chunk, !chunk.isEmpty else { break }
            s.update(chunk)
        }
        return s.finalizeHex()
    }

    /// Fingerprint of a model path: the file's sha256, or for an HF directory
    /// the sha256 of the sorted lines "name  sha256(file)\n" over its
    /// `config.json` and `*.safetensors` (what determines the weights).
    public static func model(path: String) throws -> (sha256: String, files: [String]) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw ModelError.fileNotFound(path: path) }
        guard isDir.boolValue else { return (try hex(file: path), [URL(fileURLWithPath: path).lastPathComponent]) }
        let names = modelFiles(path: path).map { URL(fileURLWithPath: $0).lastPathComponent }
        var lines = ""
        for n in names { lines += "\(n)  \(try hex(file: URL(fileURLWithPath: path).appendingPathComponent(n).path))\n" }
        return (hex(Array(lines.utf8)), names)
    }

    /// The files `model(path:)` reads, as paths (an output must not be one of them).
    public static func modelFiles(path: String) -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return [] }
        guard isDir.boolValue else { return [path] }
        return ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
            .filter { $0 == "config.json" || $0.hasSuffix(".safetensors") }.sorted()
            .map { URL(fileURLWithPath: path).appendingPathComponent($0).path }
    }
}
