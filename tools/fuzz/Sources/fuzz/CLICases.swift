import Foundation

/// Command-line mutations: option values, malformed argument lists, odd paths for
/// --model and --out (inputs, device nodes, FIFOs, directories) and stdout states.
enum CLICases {
    static let options: [String: [String]] = [
        "generate": ["--max-new-tokens", "--temperature", "--top-p", "--seed", "--prompt"],
        "perplexity": ["--seqlen", "--max-windows", "--protocol", "--text"],
        "attribute": ["--method", "--target", "--seed-value", "--rule", "--epsilon", "--max-new-tokens", "--checkpoint-every",
                      "--memory-budget-mb", "--samples", "--out", "--prompts"],
        "heatmap": ["--rule", "--epsilon", "--seed-value", "--max-new-tokens", "--target", "--prompt", "--out"],
        "prune": ["--sparsity", "--count", "--scheme", "--rank", "--layers", "--format", "--aggregation", "--out"],
        "bench": ["--tokens", "--lengths", "--runs", "--memory-budget-mb"],
        "tokenize": ["--text"], "info": ["--model"], "sparsity": ["--model"],
    ]
    /// Options whose large values ask for long but legitimate work.
    static let workSize: Set<String> = ["--max-new-tokens", "--samples", "--seqlen", "--max-windows", "--tokens", "--runs", "--lengths"]
    static let values = ["0", "-1", "1", "2", "nan", "inf", "-inf", "1e9", "9223372036854775807", "9223372036854775808",
                         "-9223372036854775808", "1.5", "0x10", "٣", "", "abc", "1e-9", "0.999999", "1.0", " 1", "--json",
                         "nm:0:4", "nm:4:2", "nm:2:0", "nm:9223372036854775807:2", "nm:-1:4", "nm:2:4:6", "(", "[a-", "(a*)*b",
                         "8,0", "8,-1", ",", "1,2,3,4,5,6,7,8,9", String(repeating: "9", count: 400), String(repeating: "x", count: 100_000), "lrp", "signed", "sparse-bitmask"]

    static func make(_ corpus: SeedCorpus, _ rng: inout Rng) -> Case {
        let ggufSeed = Seed(id: "synthetic/gguf", files: ["model.gguf": corpus.gguf.build().0], model: "model.gguf", hasTokenizer: true, family: "llama")
        let seed = rng.pick(corpus.models.filter(\.hasTokenizer) + corpus.llama2c + [ggufSeed])
        var cmd = Commands.random(seed: seed, rng: &rng)
        var mayRunLong = false
        if rng.chance(0.02) { cmd = (["bench", "--model", seed.model, "--tokens", "2", "--lengths", "8"], [:]); mayRunLong = true }
        var k = Case(format: "cli", seed: seed.id, mutation: "", files: seed.files.merging(cmd.aux) { a, _ in a }, argv: cmd.argv)
        var argv = cmd.argv
        let command = argv[0]
        switch rng.below(9) {
        case 0, 1, 2:
            let opt = rng.pick(options[command] ?? ["--model"])
            let v = rng.pick(values)
            if let i = argv.firstIndex(of: opt), i + 1 < argv.count { argv[i + 1] = v } else { argv += [opt, v] }
            if workSize.contains(opt), let n = Double(v), n >= 1000 || n.isInfinite { mayRunLong = true }
            if workSize.contains(opt), v.contains(",") || v.count > 20 { mayRunLong = true }
            k.mutation = "\(opt) \(v.prefix(40))"; k.culprits = [opt, String(opt.dropFirst(2))] + (v.isEmpty ? [] : [String(v.prefix(40))])
        case 3:
            switch rng.below(7) {
            case 0: argv.removeLast(); k.mutation = "last value dropped"; k.culprits = [argv.last ?? "", "value"]
            case 1:
                let i = 1 + rng.below(argv.count - 1)
                argv.insert(contentsOf: [argv[i]], at: i); k.mutation = "argument \(i) doubled"; k.culprits = [argv[i], "argument"]
            case 2:
                let odd = rng.pick(["--bogus", "-x", "--model=", "--", "-", "--help", "--MODEL"])
                argv.insert(odd, at: 1 + rng.below(argv.count)); k.mutation = "odd flag \(odd) inserted"; k.culprits = [odd, "argument"]
            case 3: argv = [argv[0]]; k.mutation = "no options"
            case 4:
                let c = rng.pick(["", "Info", "help", "--help", "prune2", "--version"])
                argv = [c] + argv.dropFirst(); k.mutation = "unknown command '\(c)'"; k.culprits = [c, "command", "subcommand"]
            case 5: argv = []; k.mutation = "no arguments"
            default:
                let extra = rng.pick(["extra", "", "\u{0}"])
                argv.append(extra); k.mutation = "positional argument appended"; k.culprits = [extra, "argument"]
            }
        case 4, 5:
            // --model pointing at something that is not a model file.
            let name = rng.pick(["odd.gguf", "odd.bin", "odd", "odd.safetensors"])
            let kind = rng.below(6)
            switch kind {
            case 0: k.special[name] = .fifo
            case 1: k.special[name] = .directory
            case 2: k.special[name] = .devnull
            case 3: k.files[name] = Data()
            case 4: k.files[name] = rng.chance(0.5) ? Data("GGUF".utf8) : Data(repeating: 0, count: 28)
            default: break   // does not exist
            }
            if let i = argv.firstIndex(of: "--model") { argv[i + 1] = name }
            mayRunLong = false   // bench on a FIFO must not pass as long work
            k.mutation = "--model \(name) (\(["fifo", "directory", "device node", "empty file", "4/28-byte file", "missing"][kind]))"
            k.culprits = [name, "--model"]
        case 6, 7:
            // --out at an input or a node that is not a regular file (data safety).
            let writer = rng.pick(["heatmap", "attribute", "prune"])
            let inputs = seed.files.keys.sorted() + (writer == "attribute" ? ["prompts.txt"] : [])
            var out: String
            if rng.chance(0.4) {
                out = "null"; k.special[out] = .devnull
            } else if rng.chance(0.2) {
                out = "outdir"; k.special[out] = .directory
            } else {
                out = rng.pick(inputs)
            }
            if rng.chance(0.3) { out = "./" + out }
            // Only what the writing command itself reads is an input: the other command's
            // prompt or corpus file is an ordinary destination for heatmap or prune.
            k.files = seed.files
            switch writer {
            case "heatmap": argv = ["heatmap", "--model", seed.model, "--prompt", "Once upon a time", "--out", out]
            case "attribute":
                argv = ["attribute", "--model", seed.model, "--prompts", "prompts.txt", "--method", "magnitude", "--out", out, "--quiet"]
                k.files["prompts.txt"] = SeedCorpus.prompts
            default:
                argv = ["prune", "--model", seed.model, "--method", "magnitude", "--scheme", "row", "--sparsity", "0.5", "--out", out]
                    + (rng.chance(0.5) ? ["--force"] : [])
            }
            k.mutation = "\(writer) --out \(out)"; k.culprits = ["--out", (out as NSString).lastPathComponent]
        default:
            k.stdout = rng.pick([.devFull, .closed, .brokenPipe])
            k.mutation = "stdout \(k.stdout.rawValue)"; k.culprits = ["standard output", "stdout"]
        }
        k.argv = argv
        k.mayRunLong = mayRunLong
        return k
    }
}
