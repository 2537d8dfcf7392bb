import Foundation

/// Prompt files, corpus text, --target specs and score files: the inputs that are not
/// part of a model.
enum PromptCases {
    static func prompts(_ corpus: SeedCorpus, _ rng: inout Rng) -> Case {
        let seed = corpus.models[0]
        let jsonl = rng.chance(0.7)
        let name = jsonl ? "p.jsonl" : "p.txt"
        let good: Data = jsonl ? Data([
            #"{"text": "Once upon a time", "target": " there"}"#,
            #"{"prompt": "The little girl", "target_id": 7, "contrast": " boy"}"#,
            #"{"ids": [5, 9, 17, 33], "targets": [{"position": -1, "token": 12}]}"#,
            #"{"text": "She went to the", "continuation": " forest"}"#,
            #"{"text": "One morning", "target_ids": [3, 4], "contrast_id": 5}"#,
        ].joined(separator: "\n").utf8 + [0x0A]) : SeedCorpus.prompts
        var lines = String(decoding: good, as: UTF8.self).split(separator: "\n").map(String.init)
        var mutation: String, culprits: [String] = []
        var data: Data
        if jsonl && rng.chance(0.7) {
            let n = rng.below(lines.count)
            let (d, m, c) = JSONMutator.mutate(Data(lines[n].utf8), rng: &rng,
                                               keys: ["text", "prompt", "ids", "target", "target_id", "target_ids", "targets", "contrast", "contrast_id", "continuation", "continuation_ids"])
            lines[n] = String(decoding: d, as: UTF8.self)
            data = Data(lines.joined(separator: "\n").utf8)
            mutation = "line \(n + 1): \(m)"; culprits = c + ["line \(n + 1)", ":\(n + 1)"]
        } else if rng.chance(0.2) {
            let big = rng.pick(["", "\n\n\n", String(repeating: "x", count: 2_000_000), (0..<20_000).map { _ in "{\"ids\": [1, 2]}" }.joined(separator: "\n")])
            data = Data(big.utf8); mutation = "whole file replaced (\(big.count) bytes)"
        } else {
            (data, mutation) = LineMutator.mutate(good, rng: &rng)
        }
        let method = rng.pick(["lrp", "gradient", "activation", "wanda", "lrp"])
        let argv = rng.chance(0.8)
            ? ["attribute", "--model", seed.model, "--prompts", name, "--method", method, "--out", "rel.safetensors", "--quiet"]
            : ["prune", "--model", seed.model, "--method", "wanda", "--prompts", name, "--scheme", "row", "--sparsity", "0.5", "--out", "pruned"]
        var files = seed.files
        files[name] = data
        var k = Case(format: "prompts", seed: seed.id, mutation: "\(name): \(mutation)", files: files, argv: argv,
                     mutated: [name], base: [name: good], culprits: culprits)
        // Megabytes to tokenize or thousands of prompts to explain are real work (about 2 s per MB here).
        k.mayRunLong = data.count >= 1 << 20 || data.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } > 1000
        return k
    }

    static func corpusText(_ corpus: SeedCorpus, _ rng: inout Rng) -> Case {
        let seed = rng.pick(corpus.models.filter(\.hasTokenizer))
        let jsonl = rng.chance(0.3)
        let name = jsonl ? "c.jsonl" : "c.txt"
        let good = jsonl ? Data(SyntheticModel.text.split(separator: ".").map { "{\"text\": \(JSON.quote(String($0)))}" }.joined(separator: "\n").utf8)
                         : SeedCorpus.corpus
        var data: Data, mutation: String
        switch rng.below(4) {
        case 0: (data, mutation) = LineMutator.mutate(good, rng: &rng)
        case 1:
            let whole = rng.pick([Data(), Data([0]), Data("\n".utf8), Data(repeating: 0xFF, count: 1000), Data("{\"text\": 5}\n{}\n[]\n".utf8),
                                  Data(repeating: 0x61, count: 2_000_000), Data("a".utf8)])
            (data, mutation) = (whole, "whole file replaced (\(whole.count) bytes)")
        default: (data, mutation) = ByteMutator.mutate(good, rng: &rng, head: good.count)
        }
        var argv: [String]
        if rng.chance(0.5) {
            argv = ["perplexity", "--model", seed.model, "--text", name, "--seqlen", rng.pick(["8", "16", "64"]), "--max-windows", "3"]
        } else {
            argv = ["attribute", "--model", seed.model, "--text", name, "--seqlen", rng.pick(["4", "12", "60"]), "--samples", rng.pick(["1", "3"]),
                    "--seed", rng.pick(["0", "7", "18446744073709551615"]), "--method", rng.pick(["lrp", "wanda", "gradient"]), "--out", "rel.safetensors", "--quiet"]
        }
        var files = seed.files
        files[name] = data
        var k = Case(format: "corpus", seed: seed.id, mutation: "\(name): \(mutation)", files: files, argv: argv,
                     mutated: [name], base: [name: good], culprits: [])
        k.mayRunLong = data.count >= 1 << 20   // tokenizing megabytes is real work (about 2 s per MB here)
        return k
    }

    /// --target specs from a small grammar: positions, token ids, quoted texts, differences.
    static func target(_ corpus: SeedCorpus, _ rng: inout Rng) -> Case {
        let seed = rng.pick(corpus.models.filter(\.hasTokenizer))
        func ref() -> String {
            rng.pick(["1", "0", "-1", "319", "320", "99999", "9223372036854775807", "\" the\"", "\"\"", "\"x", "\"\\u0000\"", "\" forest\"",
                      "abc", "\"\(String(repeating: "a", count: 5000))\"", "1.5", "-", "\"\"\""])
        }
        func one() -> String {
            let pos = rng.chance(0.5) ? rng.pick(["-1:", "0:", "3:", "99999:", "-99999:", ":", "1:-5:", "x:"]) : ""
            return pos + ref() + (rng.chance(0.3) ? "-" + ref() : "")
        }
        let spec: String
        switch rng.below(5) {
        case 0: spec = rng.pick(["auto", "next-token", "last-max", "continuation", "", ",", ",,", "last-max,next-token", "Next-Token"])
        case 1: spec = (0..<(1 + rng.below(4))).map { _ in one() }.joined(separator: ",")
        case 2: spec = String(repeating: "1,", count: rng.pick([100, 30_000]))   // under Linux's 128 KiB per-argument limit
        default: spec = one()
        }
        var argv: [String]
        if rng.chance(0.5) {
            argv = ["heatmap", "--model", seed.model, "--prompt", "Once upon a time", "--target", spec, "--out", "heat.html"]
        } else {
            argv = ["attribute", "--model", seed.model, "--prompts", "prompts.txt", "--target", spec, "--out", "rel.safetensors", "--quiet"]
        }
        var files = seed.files
        files["prompts.txt"] = SeedCorpus.prompts
        return Case(format: "target", seed: seed.id, mutation: "--target \(spec.prefix(60))", files: files, argv: argv, culprits: ["--target", "target", String(spec.prefix(40))])
    }

    static func scores(_ corpus: SeedCorpus, _ rng: inout Rng) -> Case {
        let seed = corpus.models[0]
        let good = corpus.scores!
        let (data, mutation, culprits) = rng.chance(0.8) ? SafetensorsMutator.mutate(good, rng: &rng)
                                                         : { let (d, m) = ByteMutator.mutate(good, rng: &rng); return (d, m, [String]()) }()
        let scheme = rng.pick(["row", "layer", "global", "nm:2:4", "neurons", "heads"])
        var argv = ["prune", "--model", seed.model, "--scores", "rel.safetensors", "--scheme", scheme]
        if !scheme.hasPrefix("nm") { argv += rng.chance(0.8) ? ["--sparsity", rng.pick(["0.5", "0.9", "0"])] : ["--count", rng.pick(["1", "10", "100000"])] }
        argv += ["--out", "pruned"] + (rng.chance(0.3) ? ["--rank", "signed"] : []) + (rng.chance(0.2) ? ["--layers", "mlp"] : [])
        var files = seed.files
        files["rel.safetensors"] = data
        return Case(format: "scores", seed: seed.id, mutation: "rel.safetensors (made by attribute): \(mutation)", files: files, argv: argv,
                    mutated: ["rel.safetensors"], base: ["rel.safetensors": good], culprits: culprits)
    }
}
