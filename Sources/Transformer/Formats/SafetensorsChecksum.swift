import Foundation

// MARK: - Checking a file's data checksum

/// A safetensors file whose data does not match the checksum in its header.
public enum SafetensorsChecksumError: LocalizedError, Equatable {
    case mismatch(file: String, recorded: String, computed: String)
    /// The recorded value is not 64 hex digits.
    case malformed(file: String, value: String)

    public var errorDescription: String? {
        switch self {
        case .mismatch(let f, let r, let c):
            return "\(f): tensor data does not match its checksum (\(Safetensors.dataChecksumKey) \(r.prefix(16))… in the header, "
                + "\(c.prefix(16))… computed): the file is corrupt"
        case .malformed(let f, let v):
            return "\(f): __metadata__ '\(Safetensors.dataChecksumKey)' is not a sha256 (\(v.prefix(80).debugDescription))"
        }
    }
}

extension SafetensorsFile {
    public enum ChecksumStatus: Equatable, Sendable {
        /// The data matches the recorded checksum.
        case verified
        /// The file records no checksum (written by other tools, or by the workbench before
        /// checksums were added): its data cannot be verified.
        case absent
    }

    /// Hashes the data section (every byte after the header) and compares it with
    /// `__metadata__[Safetensors.dataChecksumKey]`. Pages are released as they are hashed,
    /// so checking a 0.8 GB checkpoint does not keep it resident.
    public func verifyDataChecksum() throws -> ChecksumStatus {
        guard let recorded = try recordedChecksum() else { return .absent }
        var h = SHA256()
        let chunk = 16 << 20
        var offset = dataStart
        while offset < file.size {
            let n = min(chunk, file.size - offset)
            h.update(file.bytes(offset, n))
            file.release(offset, n)
            offset += n
        }
        let computed = h.finalizeHex()
        guard computed == recorded else { throw SafetensorsChecksumError.mismatch(file: path, recorded: recorded, computed: computed) }
        return .verified
    }

    /// Calls `read` for every tensor in file order while hashing its bytes just before, so a
    /// caller that reads the whole file anyway (a score file) touches each page once; then
    /// compares the checksum as `verifyDataChecksum` does. The tensors are contiguous and tile
    /// the data section (checked when the file was opened), so this hashes exactly that section.
    public func readVerifyingChecksum(_ read: (String) throws -> Void) throws -> ChecksumStatus {
        guard let recorded = try recordedChecksum() else {
            for name in names { try read(name) }
            return .absent
        }
        var h = SHA256()
        for e in entries.values.sorted(by: { ($0.begin, $0.name) < ($1.begin, $1.name) }) {
            h.update(file.bytes(dataStart + e.begin, e.byteCount))
            try read(e.name)
        }
        let computed = h.finalizeHex()
        guard computed == recorded else { throw SafetensorsChecksumError.mismatch(file: path, recorded: recorded, computed: computed) }
        return .verified
    }

    /// The recorded checksum, nil when absent; a value that is not 64 lowercase hex digits is an error.
    func recordedChecksum() throws -> String? {
        guard let recorded = metadata[Safetensors.dataChecksumKey] else { return nil }
        guard recorded.utf8.count == 64, recorded.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            throw SafetensorsChecksumError.malformed(file: path, value: recorded)
        }
        return recorded
    }
}
