import Foundation
import Transformer

// MARK: - Activation patching from the corrupted prompts
//
// Patch ablation replaces what a unit outside the circuit writes, at every
// position, by what it writes on the corrupted prompt at that position. A
// neuron's output is its column of down_proj/fc2's input (post), a head's its
// slice of o_proj/out_proj's input (z), so both are captured as those linear
// layers' inputs on the corrupted prompts (`Linear.inputEdit` returning its
// input unchanged) and later substituted column by column. Clean and corrupted
// prompts have equal token counts, so with the same packing (same lengths, same
// `maxRows`) row r of a clean pass is row r of the captured corrupted pass.

public final class PatchSource {
    /// Per layer: o_proj input z [rows, qDim] and down_proj input post [rows, dFF] on the corrupted prompts.
    public let z: [[Float]]
    public let post: [[Float]]
    /// Token count of each prompt (the clean run must have the same).
    public let lengths: [Int]
    public var rows: Int { lengths.reduce(0, +) }

    init(z: [[Float]], post: [[Float]], lengths: [Int]) { self.z = z; self.post = post; self.lengths = lengths }

    /// Runs the corrupted prompts of `items` once through the (unablated) model and keeps the sites.
    public static func capture(_ model: Model, _ items: [TaskItem], maxRows: Int = TaskEvaluator.defaultMaxRows) throws -> PatchSource {
        guard items.allSatisfy({ $0.corruptedTokens != nil }) else { throw AblationError.needsCorrupted }
        final class Sink { var data: [Float] = [] }
        let c = model.config
        let zs = (0..<c.nLayers).map { _ in Sink() }, posts = (0..<c.nLayers).map { _ in Sink() }
        for l in 0..<c.nLayers {
            for (lin, sink) in [(model.blocks[l].o, zs[l]), (model.blocks[l].down, posts[l])] {
                let n = lin.inDim
                precondition(lin.inputEdit == nil, "another edit is installed on \(lin.name)")
                lin.inputEdit = { x, rows in
                    sink.data.append(contentsOf: UnsafeBufferPointer(start: x, count: rows * n))
                    return x
                }
            }
        }
        defer { for b in model.blocks { b.o.inputEdit = nil; b.down.inputEdit = nil } }
        _ = TaskEvaluator.lastLogits(model, items.map { $0.corruptedTokens! }, maxRows: maxRows)
        return PatchSource(z: zs.map(\.data), post: posts.map(\.data), lengths: items.map(\.tokens.count))
    }

    /// Installs on `lin` an edit that overwrites input columns `cols` with `source` [rows, inDim],
    /// walking the rows pass after pass (the cursor wraps at the end of the set).
    static func install(on lin: Linear, columns cols: [Int], source: [Float]) {
        let n = lin.inDim, total = source.count / n
        final class State {
            var row = 0
            var buffer = UnsafeMutablePointer<Float>.allocate(capacity: 1)
            var capacity = 1
            deinit { buffer.deallocate() }
        }
        let s = State()
        lin.inputEdit = { x, rows in
            precondition(s.row + rows <= total, "patched pass does not line up with the captured corrupted pass")
            if s.capacity < rows * n {
                s.buffer.deallocate()
                s.buffer = .allocate(capacity: rows * n); s.capacity = rows * n
            }
            let out = s.buffer
            out.update(from: x, count: rows * n)
            source.withUnsafeBufferPointer { src in
                for r in 0..<rows {
                    let o = out + r * n, from = src.baseAddress! + (s.row + r) * n
                    for j in cols { o[j] = from[j] }
                }
            }
            s.row = (s.row + rows) % total
            return UnsafePointer(out)
        }
    }
}
