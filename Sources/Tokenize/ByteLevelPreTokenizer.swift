// MARK: - GPT-2 byte <-> unicode table

/// GPT-2's reversible byte -> printable-unicode mapping (`bytes_to_unicode()` in encoder.py).
enum ByteUnicode {
    /// `encoder[b]` is the unicode scalar value that stands for byte `b`.
    static let encoder: [UInt32] = {
        var bs: [Int] = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) {
            bs.append(b)
            cs.append(256 + n)
            n += 1
        }
        var table = [UInt32](repeating: 0, count: 256)
        for (b, c) in zip(bs, cs) { table[b] = UInt32(c) }
        return table
    }()

    /// `decoder[u]` is the byte represented by scalar value `u` (`u < 324`), or -1.
    static let decoder: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (b, u) in encoder.enumerated() { table[Int(u)] = Int16(b) }
        return table
    }()

    /// The byte-level string for raw bytes (each byte -> one scalar).
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes {
            if let u = Unicode.Scalar(encoder[Int(b)]) { s.append(u) }
        }
        return String(s)
    }

    /// Raw bytes for a byte-level token string; scalars outside the table are kept as UTF-8.
    static func decode(_ token: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(token.utf8.count)
        for u in token.unicodeScalars {
            let v = Int(u.value)
            if v < decoder.count, decoder[v] >= 0 {
                out.append(UInt8(decoder[v]))
            } else {
                out.append(contentsOf: String(u).utf8)
            }
        }
        return out
    }
}

// MARK: - Character classes

/// The classes the GPT-2 pre-tokenizer regex distinguishes.
enum ScalarClass: UInt8 {
    case letter   // \p{L}
    case number   // \p{N}
    case space    // \s (Unicode White_Space)
    case other    // [^\s\p{L}\p{N}]

    private static let ascii: [ScalarClass] = (0..<128).map { classify(UInt32($0)) }

    @inline(__always)
    static func of(_ v: UInt32) -> ScalarClass {
        v < 128 ? ascii[Int(v)] : classify(v)
    }

    static func classify(_ v: UInt32) -> ScalarClass {
        guard let s = Unicode.Scalar(v) else { return .other }
        let p = s.properties
        if p.isWhitespace { return .space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }
}

// MARK: - Pre-tokenizer scanner

/// Hand-written equivalent of the GPT-2 pre-tokenizer regex
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// (leftmost alternative wins, greedy), plus llama.cpp's SMOLLM variant which first
/// splits every `\p{N}` scalar into its own chunk and then applies the GPT-2 regex to
/// each remaining chunk independently.
struct PreTokenizerScanner {
    let smollm: Bool

    /// Splits `bytes[range]` (valid UTF-8) and calls `emit(start, end)` with byte offsets.
    func split(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, emit: (Int, Int) -> Void) {
        // Decode scalars once; keep byte offsets (offsets[n] == range.upperBound).
        var scalars: [UInt32] = []
        var classes: [ScalarClass] = []
        var offsets: [Int] = []
        scalars.reserveCapacity(range.count)
        classes.reserveCapacity(range.count)
        offsets.reserveCapacity(range.count + 1)
        var i = range.lowerBound
        while i < range.upperBound {
            let (v, len) = Self.decodeScalar(bytes, i, range.upperBound)
            scalars.append(v)
            classes.append(ScalarClass.of(v))
            offsets.append(i)
            i += len
        }
        offsets.append(range.upperBound)
        let n = scalars.count
        if !smollm {
            scan(scalars, classes, 0, n) { a, b in emit(offsets[a], offsets[b]) }
            return
        }
        var chunkStart = 0
        for k in 0..<n where classes[k] == .number {
            if chunkStart < k { scan(scalars, classes, chunkStart, k) { a, b in emit(offsets[a], offsets[b]) } }
            emit(offsets[k], offsets[k + 1])
            chunkStart = k + 1
        }
        if chunkStart < n { scan(scalars, classes, chunkStart, n) { a, b in emit(offsets[a], offsets[b]) } }
    }

    /// The GPT-2 regex over scalar indices `lo..<hi`; `emit` gets scalar index ranges.
    private func scan(_ s: [UInt32], _ c: [ScalarClass], _ lo: Int, _ hi: Int, emit: (Int, Int) -> Void) {
        let apostrophe: UInt32 = 0x27, space: UInt32 = 0x20
        var i = lo
        while i < hi {
            // 's|'t|'re|'ve|'m|'ll|'d
            if s[i] == apostrophe, i + 1 < hi {
                let c1 = s[i + 1]
                if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 {  // s t m d
                    emit(i, i + 2); i += 2; continue
                }
                if i + 2 < hi {
                    let c2 = s[i + 2]
                    if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) {  // re ve ll
                        emit(i, i + 3); i += 3; continue
                    }
                }
            }
            //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
            var j = i
            if s[i] == space, i + 1 < hi, c[i + 1] != .space { j = i + 1 }
            let k = c[j]
            if k != .space {
                var e = j + 1
                while e < hi && c[e] == k { e += 1 }
                emit(i, e); i = e; continue
            }
            // \s+(?!\S) | \s+
            var e = i + 1
            while e < hi && c[e] == .space { e += 1 }
            if e < hi && e - i >= 2 { e -= 1 }  // leave the last space to prefix the next word
            emit(i, e); i = e
        }
    }

    /// Decodes one UTF-8 scalar at `i` (input is valid UTF-8; malformed bytes map to U+FFFD, length 1).
    @inline(__always)
    static func decodeScalar(_ b: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int) -> (UInt32, Int) {
        let b0 = UInt32(b[i])
        if b0 < 0x80 { return (b0, 1) }
        func cont(_ k: Int) -> UInt32? {
            guard i + k < end, b[i + k] & 0xC0 == 0x80 else { return nil }
            return UInt32(b[i + k] & 0x3F)
        }
        if b0 & 0xE0 == 0xC0, let c1 = cont(1) { return ((b0 & 0x1F) << 6 | c1, 2) }
        if b0 & 0xF0 == 0xE0, let c1 = cont(1), let c2 = cont(2) { return ((b0 & 0x0F) << 12 | c1 << 6 | c2, 3) }
        if b0 & 0xF8 == 0xF0, let c1 = cont(1), let c2 = cont(2), let c3 = cont(3) {
            return ((b0 & 0x07) << 18 | c1 << 12 | c2 << 6 | c3, 4)
        }
        return (0xFFFD, 1)
    }
}
