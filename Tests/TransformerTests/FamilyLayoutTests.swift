import XCTest
@testable import Transformer

/// A model family is one file in Sources/Transformer/Families plus one registry line
/// (`ModelFamily.all`). These tests read the Sources tree and fail when family-specific
/// code leaks out of Families/: a `switch` (or comparison) on the family, or an HF tensor
/// name spelled as a string literal.
final class FamilyLayoutTests: XCTestCase {

    // MARK: - The rules

    /// HF tensor-name fragments that only a family file may spell.
    static let tensorNameFragments = [
        "model.layers", "model.decoder", "model.norm", "embed_tokens", "embed_positions", "lm_head",
        "self_attn", "mlp.", "q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "gate_proj", "up_proj", "down_proj",
        "input_layernorm", "post_attention_layernorm", "self_attn_layer_norm", "final_layer_norm", "fc1", "fc2",
    ]

    /// Code (comments and string contents removed) that dispatches on the family by hand.
    static func familyDispatch(in code: String) -> [String] {
        let families = ModelFamily.supported.joined(separator: "|")
        let patterns = [
            #"switch\s[^{]*\bfamily\b"#,                       // switch config.family { … }
            #"\bfamily\s*[!=]="#, #"[!=]=\s*\.(\#(families))\b"#,  // c.family == .llama
            #"\bcase\s+\.(\#(families))\b"#,                    // case .opt:
        ]
        return patterns.flatMap { p in
            // Simple word boundaries: Unicode ones treat "c.family" as one word.
            code.ranges(of: try! Regex(p).wordBoundaryKind(.simple)).map { String(code[$0]) }
        }
    }

    /// String literals (one entry per line of a multi-line literal) naming an HF tensor. A literal
    /// with a space is prose (help text, messages), never a tensor name, and is not checked.
    static func tensorNames(in literals: [String]) -> [String] {
        literals.filter { lit in !lit.contains(" ") && tensorNameFragments.contains { lit.contains($0) } }
    }

    // MARK: - Tests

    func testNoFamilySwitchOrTensorNameOutsideFamilies() throws {
        let files = try Self.sourceFiles()
        XCTAssertGreaterThan(files.count, 40, "found the Sources tree")
        var familyFiles = 0
        for url in files {
            let rel = url.path.replacingOccurrences(of: Self.sourcesDir.path + "/", with: "")
            if rel.hasPrefix("Transformer/Families/") { familyFiles += 1; continue }
            let lexed = SwiftLexer.split(try String(contentsOf: url, encoding: .utf8))
            for hit in Self.familyDispatch(in: lexed.code) {
                XCTFail("\(rel): dispatches on the model family ('\(hit)'); ask config.family.definition instead")
            }
            for name in Self.tensorNames(in: lexed.literals) {
                XCTFail("\(rel): HF tensor name \"\(name)\" outside Families/; take it from the family's names table")
            }
        }
        // One file per registered family, plus ModelFamily.swift (protocol and registry).
        XCTAssertEqual(familyFiles, ModelFamily.supported.count + 1, "Families/ holds one file per registered family")
    }

    /// The scanner must see what it is meant to forbid (else the test above could never fail).
    func testScannerCatchesViolations() {
        let source = #"""
        // switch c.family { case .llama: }  (a comment: ignored)
        func f(_ c: ModelConfig) -> String {
            switch c.family {
            case .llama: return "model.layers.\(1).mlp.up_proj.weight"
            default: return c.family == .opt ? "lm_head.weight" : "help text about self_attn.q_proj"
            }
        }
        """#
        let lexed = SwiftLexer.split(source)
        XCTAssertEqual(Self.familyDispatch(in: lexed.code).count, 4, lexed.code)   // switch, family ==, == .opt, case .llama
        XCTAssertEqual(Self.tensorNames(in: lexed.literals), ["model.layers..mlp.up_proj.weight", "lm_head.weight"])
        XCTAssertFalse(lexed.code.contains("self_attn"), "string contents are not code")
    }

    func testRegistry() {
        XCTAssertEqual(ModelFamily.supported, ["llama", "opt"])
        for f in ModelFamily.all.map({ $0.family }) {
            XCTAssertEqual(ModelFamily(rawValue: f.rawValue), f)
            XCTAssertEqual(f.definition.family, f)
            XCTAssertFalse(f.names.embed.isEmpty)
        }
        XCTAssertNil(ModelFamily(rawValue: "gpt2"), "an unregistered model_type is not a family")
        XCTAssertThrowsError(try JSONDecoder().decode(ModelFamily.self, from: Data(#""gpt2""#.utf8)))
        XCTAssertEqual(ModelFamily.llama.names.neurons(3), "model.layers.3.mlp.neurons")
        XCTAssertEqual(ModelFamily.opt.names.heads(0), "model.decoder.layers.0.self_attn.heads")
        XCTAssertTrue(ModelFamily.llama.names.isParameterLike("lm_head.weight"))
        XCTAssertTrue(ModelFamily.opt.names.isParameterLike("model.decoder.layers.9.fc1.weight"))
        XCTAssertFalse(ModelFamily.opt.names.isParameterLike("activation.layers.0.post.abs_sum"))
    }

    // MARK: - Sources

    static let sourcesDir: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources")

    static func sourceFiles() throws -> [URL] {
        guard let e = FileManager.default.enumerator(at: sourcesDir, includingPropertiesForKeys: nil) else {
            throw CocoaError(.fileNoSuchFile)
        }
        return e.compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }.sorted { $0.path < $1.path }
    }
}

/// Splits Swift source into code without comments or string contents, and the string
/// literals' text (interpolations dropped; one entry per line of a multi-line literal).
/// Enough Swift for this check: //, /* */, "…", """…""", #"…"# and \( … ) nesting.
enum SwiftLexer {
    static func split(_ s: String) -> (code: String, literals: [String]) {
        let c = Array(s.unicodeScalars)
        var code = String.UnicodeScalarView(), literals: [String] = []
        var i = 0
        func at(_ k: Int, _ str: String) -> Bool {
            let u = Array(str.unicodeScalars)
            return k + u.count <= c.count && Array(c[k..<(k + u.count)]) == u
        }
        while i < c.count {
            if at(i, "//") { while i < c.count && c[i] != "\n" { i += 1 }; continue }
            if at(i, "/*") {
                i += 2
                while i < c.count && !at(i, "*/") { i += 1 }
                i += 2; continue
            }
            var hashes = 0
            while at(i + hashes, "#") { hashes += 1 }
            if c.count > i + hashes && c[i + hashes] == "\"" {
                let multi = at(i + hashes, "\"\"\"")
                let close = (multi ? "\"\"\"" : "\"") + String(repeating: "#", count: hashes)
                i += hashes + (multi ? 3 : 1)
                var text = String.UnicodeScalarView()
                while i < c.count && !at(i, close) {
                    if c[i] == "\\" && hashes == 0 && i + 1 < c.count {
                        if c[i + 1] == "(" {                     // interpolation: skip the expression
                            var depth = 0
                            i += 1
                            repeat {
                                if c[i] == "(" { depth += 1 } else if c[i] == ")" { depth -= 1 }
                                i += 1
                            } while i < c.count && depth > 0
                            continue
                        }
                        text.append(c[i + 1]); i += 2; continue
                    }
                    text.append(c[i]); i += 1
                }
                i += close.unicodeScalars.count
                literals += String(text).split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
                code.append(contentsOf: "\"\"".unicodeScalars)
                continue
            }
            code.append(c[i]); i += 1
        }
        return (String(code), literals)
    }
}
