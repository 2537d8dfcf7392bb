import Foundation
import XCTest
@testable import Circuits
import Tokenize
import Transformer
import TestSupport

// MARK: - IOI and greater-than generation (GPT-2 tokenizer from shared/assets)

final class TaskGeneratorTests: XCTestCase {
    func testTemplateFamiliesAndSelection() throws {
        let a = try TaskTestSupport.ioiAssets()
        XCTAssertEqual(a.names.count, 99)
        XCTAssertEqual(a.families.first { $0.name == "BABA" }?.templates.count, 15)
        XCTAssertEqual(a.families.first { $0.name == "ABBA" }?.templates.count, 15)
        XCTAssertFalse(a.families.contains { $0.name == "ABC" || $0.name == "BAC" }, "[C] templates are not IOI templates")
        XCTAssertEqual(try a.select("BABA,ABBA").count, 30)
        XCTAssertEqual(try a.select("BABA,ABBA,-ABBA:14").map(\.id).contains("ABBA:14"), false)
        XCTAssertEqual(try a.select("BABA,ABBA,-ABBA:14").count, 29)
        XCTAssertEqual(try a.select("BABA:2-4").map(\.id), ["BABA:2", "BABA:3", "BABA:4"])
        XCTAssertEqual(try a.select("ABBA:14").first?.text, "Friends [A] and [B] found a [OBJECT] at the [PLACE]. [B] gave it to [A]")
        for bad in ["CABA", "BABA:15", "BABA:3-1", "BABA,", "BABA:x", "-BABA"] {
            guard case .badTemplateSelection? = TaskTestSupport.error({ try a.select(bad) }) else { return XCTFail(bad) }
        }
    }

    func testIOIRecordsAreWellFormed() throws {
        let tok = try TaskTestSupport.gpt2(), a = try TaskTestSupport.ioiAssets()
        let g = try IOIGenerator.generate(assets: a, templates: try a.select("BABA,ABBA"), tokenizer: tok, n: 120, seed: 3)
        XCTAssertEqual(g.prompts.count, 120)
        XCTAssertEqual(g.keptNames.count + g.droppedNames.count, 99)
        for n in g.keptNames { XCTAssertEqual(try tok.encode(" " + n, addBOS: false).count, 1, n) }
        for n in g.droppedNames { XCTAssertGreaterThan(try tok.encode(" " + n, addBOS: false).count, 1, n) }
        XCTAssertEqual(Set(g.prompts.map(\.text)).count, 120, "no duplicate prompt")
        var families = Set<String>()
        for p in g.prompts {
            families.insert(p.template.family)
            XCTAssertNotEqual(p.io, p.s)
            XCTAssertEqual(try tok.encode(" " + p.io, addBOS: false), [p.answerId])
            XCTAssertEqual(try tok.encode(" " + p.s, addBOS: false), [p.distractorId])
            // The prompt is the full filled template minus the final " IO".
            var full = p.template.text.replacingOccurrences(of: "[A]", with: p.io).replacingOccurrences(of: "[B]", with: p.s)
            full = full.replacingOccurrences(of: "[PLACE]", with: p.place ?? "").replacingOccurrences(of: "[OBJECT]", with: p.object ?? "")
            XCTAssertEqual(p.text + " " + p.io, full)
            // IO once and S twice in the prompt (BABA and ABBA alike).
            XCTAssertEqual(p.text.components(separatedBy: " \(p.io)").count - 1, 1, p.text)
            XCTAssertEqual(p.text.components(separatedBy: " \(p.s)").count - 1, 2, p.text)
            // ABC: three distinct new names, same token count, same template with names swapped in order.
            XCTAssertEqual(Set(p.corruptedNames).count, 3)
            XCTAssertFalse(p.corruptedNames.contains(p.io) || p.corruptedNames.contains(p.s))
            XCTAssertEqual(try tok.encode(p.corrupted).count, try tok.encode(p.text).count)
            var k = 0
            let expected = IOIGenerator.fill(p.template, place: p.place, object: p.object) { _, _ in defer { k += 1 }; return p.corruptedNames[k] }
            XCTAssertEqual(p.corrupted, expected)
            // The record round-trips through the task-file reader and tokenizes to the same ids.
            let item = try TaskSet.parse(p.record.jsonLine, path: "r.jsonl").prompts[0].tokenize(tokenizer: tok, vocabSize: 50257, maxSeqLen: 1024)
            XCTAssertEqual(item.answerIds, [p.answerId]); XCTAssertEqual(item.distractorIds, [p.distractorId])
            XCTAssertEqual(item.template, p.template.id); XCTAssertEqual(item.kind, .ioi)
        }
        XCTAssertEqual(families, ["BABA", "ABBA"])
    }

    func testIOIDeterministicPerSeedAndDisjointAcrossSeeds() throws {
        let tok = try TaskTestSupport.gpt2(), a = try TaskTestSupport.ioiAssets()
        let t = try a.select("BABA,ABBA")
        let first = try IOIGenerator.generate(assets: a, templates: t, tokenizer: tok, n: 64, seed: 0)
        let again = try IOIGenerator.generate(assets: a, templates: t, tokenizer: tok, n: 64, seed: 0)
        XCTAssertEqual(first.prompts, again.prompts)
        XCTAssertEqual(TaskRecord.jsonl(first.prompts.map(\.record)), TaskRecord.jsonl(again.prompts.map(\.record)))
        var seen: [String: Int] = [:]
        for seed in 0..<4 {
            let g = seed == 0 ? first : try IOIGenerator.generate(assets: a, templates: t, tokenizer: tok, n: 64, seed: seed)
            for p in g.prompts {
                if let other = seen[p.text] { XCTFail("seed \(seed) repeats a prompt of seed \(other): \(p.text)") }
                seen[p.text] = seed
                // Partition membership follows the key alone.
                let key = "ioi|\(p.template.id)|\(p.io)|\(p.s)|\(p.place ?? "-")|\(p.object ?? "-")"
                XCTAssertEqual(PromptPartition.owner(of: key), seed)
            }
        }
        XCTAssertEqual(seen.count, 256)
        // A template subset gives only those templates.
        let held = try IOIGenerator.generate(assets: a, templates: try a.select("ABBA:14"), tokenizer: tok, n: 20, seed: 1)
        XCTAssertEqual(Set(held.prompts.map(\.template.id)), ["ABBA:14"])
    }

    func testIOIBadInput() throws {
        let tok = try TaskTestSupport.gpt2(), a = try TaskTestSupport.ioiAssets()
        let t = try a.select("BABA")
        XCTAssertEqual(TaskTestSupport.error { try IOIGenerator.generate(assets: a, templates: t, tokenizer: tok, n: 1, seed: 32) },
                       .seedOutOfRange(seed: 32, partitions: 32))
        // A template without place/object has |names|·(|names|−1) prompts; a seed owns ≈ 1/32 of them.
        let small = try a.select("BABA:4")
        guard case .promptSpaceExhausted(let task, let seed, let found, let requested, let space)? =
                TaskTestSupport.error({ try IOIGenerator.generate(assets: a, templates: small, tokenizer: tok, n: 1000, seed: 2) }) else {
            return XCTFail("expected promptSpaceExhausted")
        }
        let k = try IOIGenerator.singleTokenNames(a.names, tokenizer: tok).kept.count
        XCTAssertEqual(task, "ioi"); XCTAssertEqual(seed, 2); XCTAssertEqual(requested, 1000); XCTAssertEqual(space, k * (k - 1))
        XCTAssertGreaterThan(found, space / 64); XCTAssertLessThan(found, space / 16)
        // Too few single-token names.
        var few = a
        few.names = ["Mary", "John", "Xylophonists", "Quaternionic"]
        XCTAssertEqual(TaskTestSupport.error { try IOIGenerator.generate(assets: few, templates: t, tokenizer: tok, n: 1, seed: 0) },
                       .tooFewNames(kept: 2, dropped: ["Xylophonists", "Quaternionic"]))
    }

    func testGreaterThanGeneration() throws {
        let tok = try TaskTestSupport.gpt2()
        let g = try GreaterThanGenerator.generate(tokenizer: tok, n: 50, seed: 5)
        XCTAssertEqual(g.prompts, try GreaterThanGenerator.generate(tokenizer: tok, n: 50, seed: 5).prompts)
        let other = try GreaterThanGenerator.generate(tokenizer: tok, n: 50, seed: 6)
        XCTAssertTrue(Set(g.prompts.map(\.text)).isDisjoint(with: other.prompts.map(\.text)))
        XCTAssertEqual(Set(g.prompts.map(\.text)).count, 50)
        for p in g.prompts {
            XCTAssertEqual(p.text, "The \(p.noun) lasted from the year \(p.century)\(String(format: "%02d", p.startSuffix)) to the year \(p.century)")
            XCTAssertTrue(p.corrupted.contains("year \(p.century)01 to"))
            XCTAssertEqual(try tok.encode(p.corrupted).count, try tok.encode(p.text).count)
            // GPT-2: the sets are the single-token suffixes above / below the start that follow the prompt's tokens.
            let reach = try TaskTestSupport.twoTokenYears(p.text, tok)
            XCTAssertEqual(p.greaterIds, reach.filter { $0.key > p.startSuffix }.map(\.value).sorted())
            XCTAssertEqual(p.smallerIds, reach.filter { $0.key < p.startSuffix }.map(\.value).sorted())
            let item = try TaskSet.parse(p.record.jsonLine, path: "g.jsonl").prompts[0].tokenize(tokenizer: tok, vocabSize: 50257, maxSeqLen: 1024)
            XCTAssertEqual(item.kind, .greaterThan)
            XCTAssertEqual(item.answerIds, p.greaterIds); XCTAssertEqual(item.distractorIds, p.smallerIds)
        }
    }
}
