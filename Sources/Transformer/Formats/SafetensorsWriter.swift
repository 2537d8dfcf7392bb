import Foundation

// MARK: - Streaming safetensors writer

/// A tensor whose bytes are produced while the file is written, so a large
/// payload (a 0.5 GB checkpoint, a 0.4 GB relevance map) is never copied.
public struct StreamedTensor {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    public let byteCount: Int
    /// Writes exactly `byteCount` bytes to the sink. May run twice (once to hash, once to
    /// write), so it must produce the same bytes each time.
    public let emit: (OutputSink) throws -> Void

    public init(name: String, dtype: SafetensorsDType, shape: [Int], byteCount: Int, emit: @escaping (OutputSink) throws -> Void) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.byteCount = byteCount; self.emit = emit
    }

    public init(record r: SafetensorsRecord) {
        let bytes = r.bytes
        self.init(name: r.name, dtype: r.dtype, shape: r.shape, byteCount: bytes.count) { sink in
            try bytes.withUnsafeBytes { try StreamedTensor.write($0, sink) }
        }
    }

    /// F32 values straight from the array (little-endian host).
    public init(name: String, floats: [Float], shape: [Int]) {
        self.init(name: name, dtype: .F32, shape: shape, byteCount: floats.count * 4) { sink in
            try floats.withUnsafeBytes { try StreamedTensor.write($0, sink) }
        }
    }

    /// F64 values straight from the array.
    public init(name: String, doubles: [Double], shape: [Int]) {
        self.init(name: name, dtype: .F64, shape: shape, byteCount: doubles.count * 8) { sink in
            try doubles.withUnsafeBytes { try StreamedTensor.write($0, sink) }
        }
    }

    /// Writes a buffer without copying it (in 64 MB pieces).
    public static func write(_ raw: UnsafeRawBufferPointer, _ sink: OutputSink) throws {
        guard let base = raw.baseAddress else { return }
        var lo = 0
        while lo < raw.count {
            let n = min(raw.count - lo, 64 << 20)
            try sink.write(UnsafeRawBufferPointer(start: base + lo, count: n))
            lo += n
        }
    }
}

extension Safetensors {
    /// `__metadata__` key holding the SHA-256 (hex) of the data section — every byte after the
    /// header, i.e. all tensor data in file order. Written on relevance files and attribution
    /// checkpoints; checked by `SafetensorsFile.verifyDataChecksum()`.
    public static let dataChecksumKey = "tensors_sha256"

    /// Streams tensors into `path` with the same layout as `serialize` through
    /// `AtomicFile.write(to:allowStreams:_:)` (temporary sibling, fsync, rename; nothing is held
    /// twice). With `checksum`, `dataChecksumKey` is added to the metadata. The header that holds
    /// it comes first, so for a file the header is written with a placeholder of the same length,
    /// the data is hashed as it is written and the sum patched in; a device or FIFO cannot be
    /// rewound, so there the tensors are streamed through a hasher first (a second pass).
    public static func writeStreaming(_ tensors: [StreamedTensor], metadata: [String: String]?, checksum: Bool = false,
                                      allowStreams: Bool = true, to path: String) throws {
        let sorted = ordered(tensors, dtype: \.dtype, name: \.name)
        let entries = sorted.map { ($0.name, $0.dtype, $0.shape, $0.byteCount) }
        guard checksum else {
            let head = header(entries, metadata: metadata)
            try AtomicFile.write(to: path, allowStreams: allowStreams) { sink in
                try sink.write(head)
                try emitAll(sorted, into: sink)
            }
            return
        }
        func head(_ sum: String) -> [UInt8] { header(entries, metadata: (metadata ?? [:]).merging([dataChecksumKey: sum]) { _, new in new }) }
        try AtomicFile.write(to: path, allowStreams: allowStreams) { sink in
            if sink.isStream {
                let hasher = OutputSink.hashing()
                try emitAll(sorted, into: hasher)
                try sink.write(head(hasher.digestHex()))
                try emitAll(sorted, into: sink)
                return
            }
            let placeholder = String(repeating: "0", count: 64), h = head(placeholder)
            // Metadata keys are unique and values are escaped, so this quoted key-value pair occurs once.
            let slot = Array("\(JSONText.quote(dataChecksumKey)):\"\(placeholder)\"".utf8)
            guard let at = firstIndex(of: slot, in: h) else { preconditionFailure("checksum slot missing from the header") }
            try sink.write(h)
            sink.startHashing()
            try emitAll(sorted, into: sink)
            try sink.patch(Array(sink.digestHex().utf8), at: at + slot.count - 65)
        }
    }

    static func firstIndex(of needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard !needle.isEmpty, needle.count <= hay.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<i + needle.count]) == needle { return i }
        return nil
    }

    /// Emits every tensor, checking that each wrote exactly its declared size (the header's
    /// offsets were computed from it).
    static func emitAll(_ tensors: [StreamedTensor], into sink: OutputSink) throws {
        for t in tensors {
            let before = sink.bytesWritten
            try t.emit(sink)
            guard sink.bytesWritten - before == t.byteCount else {
                throw ModelError.cannotWrite(path: sink.path, reason: "tensor '\(t.name)' produced \(sink.bytesWritten - before) bytes, declared \(t.byteCount)")
            }
        }
    }
}
