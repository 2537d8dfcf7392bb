import Foundation

// MARK: - Metadata values

public enum GGUFValue: Equatable, Sendable, CustomStringConvertible {
    case uint(UInt64), int(Int64), float(Double), bool(Bool), string(String)
    /// Arrays are stored by element kind (all integer widths → Int64) so token tables stay cheap.
    case intArray([Int64]), floatArray([Double]), boolArray([Bool]), stringArray([String]), nestedArray([GGUFValue])

    public var intValue: Int? {
        switch self {
        case .uint(let v): return Int(exactly: v)
        case .int(let v): return Int(exactly: v)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .float(let v): return v
        case .uint(let v): return Double(v)
        case .int(let v): return Double(v)
        default: return nil
        }
    }
    public var description: String {
        func list<T>(_ kind: String, _ a: [T]) -> String {
            a.count <= 8 ? "[\(a.map { "\($0)" }.joined(separator: ", "))]" : "[\(kind) × \(a.count)]"
        }
        switch self {
        case .uint(let v): return "\(v)"
        case .int(let v): return "\(v)"
        case .float(let v): return "\(v)"
        case .bool(let v): return "\(v)"
        case .string(let s): return s.count <= 80 ? s.debugDescription : "\(String(s.prefix(77)).debugDescription)… (\(s.count) chars)"
        case .intArray(let a): return list("int", a)
        case .floatArray(let a): return list("float", a)
        case .boolArray(let a): return list("bool", a)
        case .stringArray(let a): return list("string", a.map { GGUFValue.string($0).description })
        case .nestedArray(let a): return list("array", a)
        }
    }
}

/// A stored GGUF value type (gguf.h `gguf_type`: 0 u8 … 12 f64) and, for arrays (9), the element type.
public struct GGUFTypeTag: Hashable, Sendable {
    public var type: UInt32
    public var element: UInt32?
    public init(type: UInt32, element: UInt32? = nil) { self.type = type; self.element = element }
    public static let u32 = GGUFTypeTag(type: 4), i32 = GGUFTypeTag(type: 5), f32 = GGUFTypeTag(type: 6)
    public static let bool = GGUFTypeTag(type: 7), string = GGUFTypeTag(type: 8), u64 = GGUFTypeTag(type: 10)
    public static func array(_ element: UInt32) -> GGUFTypeTag { GGUFTypeTag(type: 9, element: element) }
}

// MARK: - Bounds-checked cursor

struct GGUFCursor {
    let file: MappedFile
    var pos: Int

    mutating func take(_ n: Int, _ what: @autoclosure () -> String) throws -> Int {
        guard n >= 0, n <= file.size - pos else { throw GGUFError.truncated(path: file.path, what: what(), offset: pos) }
        defer { pos += n }
        return pos
    }
    mutating func u8(_ w: @autoclosure () -> String) throws -> UInt8 { file.u8(try take(1, w())) }
    mutating func u16(_ w: @autoclosure () -> String) throws -> UInt16 {
        UInt16(littleEndian: file.base.loadUnaligned(fromByteOffset: try take(2, w()), as: UInt16.self))
    }
    mutating func u32(_ w: @autoclosure () -> String) throws -> UInt32 { file.u32(try take(4, w())) }
    mutating func u64(_ w: @autoclosure () -> String) throws -> UInt64 { file.u64(try take(8, w())) }
    mutating func string(_ w: @autoclosure () -> String) throws -> String {
        let n = try u64(w())
        guard n <= UInt64(file.size - pos) else { throw GGUFError.truncated(path: file.path, what: w(), offset: pos) }
        let o = try take(Int(n), w())
        return String(decoding: file.bytes(o, Int(n)), as: UTF8.self)
    }
    /// Reads one value of GGUF type `t`; `depth` bounds array nesting.
    mutating func value(_ t: UInt32, key: String, depth: Int = 0) throws -> GGUFValue {
        switch t {
        case 0: return .uint(UInt64(try u8(key)))
        case 1: return .int(Int64(Int8(bitPattern: try u8(key))))
        case 2: return .uint(UInt64(try u16(key)))
        case 3: return .int(Int64(Int16(bitPattern: try u16(key))))
        case 4: return .uint(UInt64(try u32(key)))
        case 5: return .int(Int64(Int32(bitPattern: try u32(key))))
        case 6: return .float(Double(Float(bitPattern: try u32(key))))
        case 7: return .bool(try u8(key) != 0)
        case 8: return .string(try string(key))
        case 9: return try array(key: key, depth: depth)
        case 10: return .uint(try u64(key))
        case 11: return .int(Int64(bitPattern: try u64(key)))
        case 12: return .float(Double(bitPattern: try u64(key)))
        default: throw GGUFError.badValueType(path: file.path, key: key, type: t)
        }
    }
    private mutating func array(key: String, depth: Int) throws -> GGUFValue {
        let t = try u32(key), n = try u64(key)
        guard depth < 4 else { throw GGUFError.badKey(path: file.path, key: key, reason: "arrays nested too deeply") }
        // Smallest encoding of one element: a count larger than remaining bytes / that is absurd.
        let minSize: [UInt32: Int] = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 9: 12, 10: 8, 11: 8, 12: 8]
        guard let m = minSize[t] else { throw GGUFError.badValueType(path: file.path, key: key, type: t) }
        // Checked before reserveCapacity: a hostile length must not become a huge allocation.
        guard n <= 1 << 32 else { throw GGUFError.absurdCount(path: file.path, what: "array length of '\(key)'", count: n) }
        guard n <= UInt64((file.size - pos) / m) else { throw GGUFError.truncated(path: file.path, what: key, offset: pos) }
        let count = Int(n)
        switch t {
        case 8:
            var a = [String](); a.reserveCapacity(count)
            for _ in 0..<count { a.append(try string(key)) }
            return .stringArray(a)
        case 6, 12:
            var a = [Double](); a.reserveCapacity(count)
            for _ in 0..<count { if case .float(let v) = try value(t, key: key) { a.append(v) } }
            return .floatArray(a)
        case 7:
            var a = [Bool](); a.reserveCapacity(count)
            for _ in 0..<count { a.append(try u8(key) != 0) }
            return .boolArray(a)
        case 9:
            var a = [GGUFValue](); a.reserveCapacity(count)
            for _ in 0..<count { a.append(try self.array(key: key, depth: depth + 1)) }
            return .nestedArray(a)
        default:
            var a = [Int64](); a.reserveCapacity(count)
            for _ in 0..<count {
                switch try value(t, key: key) {
                case .int(let v): a.append(v)
                case .uint(let v): a.append(Int64(bitPattern: v))
                default: break
                }
            }
            return .intArray(a)
        }
    }
}
