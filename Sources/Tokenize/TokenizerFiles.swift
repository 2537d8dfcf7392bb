import Foundation

// MARK: - File helpers shared by the tokenizer families

enum TokenizerFiles {
    /// Reads a whole file, mapping failures to typed `TokenizerError`s that name the file.
    /// A FIFO, device or directory is refused without reading (InputFile); 1 GB bounds
    /// what a tokenizer file may be (the largest real ones are ~20 MB).
    static func read(_ path: String) throws -> Data {
        do {
            return try InputFile.read(path, limit: 1 << 30)
        } catch InputFileError.notFound(let p) {
            throw TokenizerError.fileNotFound(path: p)
        } catch InputFileError.notRegular(_, let kind) {
            throw TokenizerError.invalidFile(path: path, reason: kind == "directory" ? "is a directory" : "is a \(kind), not a regular file")
        } catch let e as InputFileError {
            throw TokenizerError.invalidFile(path: path, reason: "cannot read: \(e.localizedDescription)")
        }
    }

    /// Splits bytes into lines (LF or CRLF), keeping empty lines.
    static func lines(_ data: Data) -> [ArraySlice<UInt8>] {
        let bytes = [UInt8](data)
        var out: [ArraySlice<UInt8>] = []
        var start = 0
        for i in 0..<bytes.count where bytes[i] == 0x0A {
            var end = i
            if end > start && bytes[end - 1] == 0x0D { end -= 1 }
            out.append(bytes[start..<end])
            start = i + 1
        }
        if start < bytes.count {
            var end = bytes.count
            if bytes[end - 1] == 0x0D { end -= 1 }
            out.append(bytes[start..<end])
        }
        return out
    }
}

// MARK: - Little-endian reader with bounds checks

/// Sequential little-endian reader over `Data` that throws instead of trapping.
struct ByteReader {
    let bytes: [UInt8]
    let path: String
    private(set) var offset = 0

    init(_ data: Data, path: String) {
        self.bytes = [UInt8](data)
        self.path = path
    }

    var isAtEnd: Bool { offset >= bytes.count }
    var remaining: Int { bytes.count - offset }

    mutating func uint32() throws -> UInt32 {
        guard remaining >= 4 else {
            throw TokenizerError.invalidFile(path: path, reason: "truncated at byte \(offset) (need 4 bytes)")
        }
        var v: UInt32 = 0
        for k in 0..<4 { v |= UInt32(bytes[offset + k]) << (8 * UInt32(k)) }
        offset += 4
        return v
    }

    mutating func int32() throws -> Int32 { Int32(bitPattern: try uint32()) }

    mutating func float32() throws -> Float { Float(bitPattern: try uint32()) }

    mutating func take(_ n: Int) throws -> [UInt8] {
        guard n >= 0, remaining >= n else {
            throw TokenizerError.invalidFile(path: path, reason: "truncated at byte \(offset) (need \(n) bytes)")
        }
        defer { offset += n }
        return Array(bytes[offset..<(offset + n)])
    }
}
