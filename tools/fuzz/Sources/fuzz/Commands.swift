import Foundation

/// Command lines that exercise a loaded model, small enough to finish in well under a
/// second on the tiny seeds. Auxiliary inputs (prompts, corpus) are added to the case.
enum Commands {
    static let light = ["info", "tokenize", "generate", "perplexity", "attribute", "heatmap", "prune", "sparsity",
                        "prune-wanda", "attribute-text"]

    static func argv(_ name: String, seed: Seed, rng: inout Rng) -> (argv: [String], aux: [String: Data]) {
        let m = seed.model
        let tokenized = seed.hasTokenizer
        switch name {
        case "info": return (["info", "--model", m], [:])
        case "sparsity": return (["sparsity", "--model", m] + (rng.chance(0.3) ? ["--json"] : []), [:])
        case "tokenize": return (["tokenize", "--model", m, "--text", "Once upon a time"], [:])
        case "generate":
            return (["generate", "--model", m, "--prompt", "Once upon a time", "--max-new-tokens", "4"]
                    + (rng.chance(0.3) ? ["--temperature", "0.8", "--top-p", "0.9", "--seed", "3"] : []), [:])
        case "perplexity":
            return (["perplexity", "--model", m, "--text", "corpus.txt", "--seqlen", "16", "--max-windows", "2"]
                    + (rng.chance(0.3) ? ["--protocol", "llamacpp"] : []), ["corpus.txt": SeedCorpus.corpus])
        case "attribute":
            let method = rng.pick(["lrp", "lrp", "gradient", "wanda", "magnitude", "activation"])
            let prompts = tokenized ? ("prompts.txt", SeedCorpus.prompts) : ("ids.jsonl", SeedCorpus.idsPrompts)
            return (["attribute", "--model", m, "--prompts", prompts.0, "--method", method, "--out", "rel.safetensors", "--quiet"],
                    [prompts.0: prompts.1])
        case "attribute-text":
            return (["attribute", "--model", m, "--text", "corpus.txt", "--seqlen", "12", "--samples", "2", "--seed", "1",
                     "--out", "rel.safetensors", "--quiet"], ["corpus.txt": SeedCorpus.corpus])
        case "heatmap": return (["heatmap", "--model", m, "--prompt", "Once upon a time", "--out", "heat.html"], [:])
        case "prune":
            let scheme = rng.pick(["row", "layer", "global", "nm:2:4", "neurons", "heads"])
            return (["prune", "--model", m, "--method", "magnitude", "--scheme", scheme]
                    + (scheme.hasPrefix("nm") ? [] : ["--sparsity", "0.5"]) + ["--out", "pruned"]
                    + (rng.chance(0.3) ? ["--format", "sparse-bitmask"] : []), [:])
        case "prune-wanda":
            let prompts = tokenized ? ("prompts.txt", SeedCorpus.prompts) : ("ids.jsonl", SeedCorpus.idsPrompts)
            return (["prune", "--model", m, "--method", "wanda", "--prompts", prompts.0, "--scheme", "row", "--sparsity", "0.5",
                     "--out", "pruned"], [prompts.0: prompts.1])
        default: return (["info", "--model", m], [:])
        }
    }

    /// A random command that makes sense for the seed (no text commands without a tokenizer).
    static func random(seed: Seed, rng: inout Rng, from: [String]? = nil) -> (argv: [String], aux: [String: Data]) {
        // prune writes the tokenizer files beside the weights, so it refuses a model without one.
        let pool = from ?? (seed.hasTokenizer ? light : ["info", "sparsity", "attribute"])
        return argv(rng.pick(pool), seed: seed, rng: &rng)
    }
}
