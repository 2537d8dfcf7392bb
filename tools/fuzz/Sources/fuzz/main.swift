import Foundation

// fuzz: hostile-input campaign against the workbench release binary (issue 12).
// See tools/fuzz/README.md. Exit status: 0 when no run crashed, hung or changed an
// input; 1 otherwise; 64 on a usage error.

let usage = """
Usage: fuzz [--workbench PATH] [--runs N] [--seed S] [--jobs J] [--timeout SEC] [--formats a,b]
            [--report FILE] [--save-fixtures DIR] [--only I] [--keep] [--replay DIR] [--verbose]
  --workbench PATH     binary under test (default .build/release/workbench)
  --runs N             number of runs (default 300); --start I: first run index (default 0)
  --seed S             campaign seed (default 1): run i is the same input for the same seed
  --jobs J             parallel runs (default 2); each run gets OPENBLAS_NUM_THREADS=1
  --timeout SEC        per-run timeout (default 15); --mem-mb M: address-space cap (default 4096; 0 = none, for sanitizer builds)
  --formats LIST       only these formats (default all available)
  --fixtures DIR       tiny checkpoints to seed from (default Tests/Fixtures)
  --assets DIR         shared assets for stories260K (default $WORKBENCH_ASSETS, else ../shared/assets; 'none' = off)
  --report FILE        JSON report (default fuzz-report.json)
  --save-fixtures DIR  minimise each distinct crash / input change and save it there
  --minimise-budget N  runs per minimisation (default 200)
  --only I             run only index I, keep its folder and print its details
  --replay DIR         replay saved fixtures (DIR or DIR/*/case.json); fail if any crashes, hangs or changes an input
  --keep               keep the folders of failing runs under the scratch directory
  --scratch DIR        scratch directory (default $TMPDIR/workbench-fuzz-<pid>)
  --export-seeds DIR   write every seed (one folder per seed id) and exit
  --verbose            print every non-clean run
  --dry-run            print what each run would mutate and run, without running it
"""

func fail(_ msg: String) -> Never {
    FileHandle.standardError.write(Data("Error: \(msg)\n\(usage)\n".utf8))
    exit(64)
}

func runMain() -> Never {
    var opts: [String: String] = [:]
    var flags: Set<String> = []
    do {
        let args = Array(CommandLine.arguments.dropFirst())
        var i = 0
        let valueless: Set<String> = ["--keep", "--verbose", "--help", "--dry-run"]
        while i < args.count {
            let a = args[i]
            if valueless.contains(a) { flags.insert(a); i += 1; continue }
            guard a.hasPrefix("--"), i + 1 < args.count else { fail("unexpected argument '\(a)'") }
            opts[a] = args[i + 1]; i += 2
        }
    }
    if flags.contains("--help") { print(usage); exit(0) }
    let known: Set<String> = ["--workbench", "--runs", "--start", "--seed", "--jobs", "--timeout", "--mem-mb", "--formats", "--fixtures",
                              "--assets", "--report", "--save-fixtures", "--minimise-budget", "--only", "--replay", "--scratch", "--export-seeds"]
    for k in opts.keys where !known.contains(k) { fail("unknown option \(k)") }
    func intOpt(_ k: String, _ d: Int) -> Int {
        guard let s = opts[k] else { return d }
        guard let v = Int(s), v >= 0 else { fail("\(k) needs a non-negative integer, got '\(s)'") }
        return v
    }

    let fm = FileManager.default
    let cwd = fm.currentDirectoryPath
    func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : cwd + "/" + p }
    let workbench = absolute(opts["--workbench"] ?? ".build/release/workbench")
    guard fm.isExecutableFile(atPath: workbench) else { fail("--workbench \(workbench) is not an executable file (build it: swift build -c release)") }
    let runs = intOpt("--runs", 300), start = intOpt("--start", 0), jobs = max(1, intOpt("--jobs", 2))
    guard let seed = UInt64(opts["--seed"] ?? "1") else { fail("--seed needs an unsigned integer") }
    guard let timeout = Double(opts["--timeout"] ?? "15"), timeout > 0 else { fail("--timeout needs a positive number of seconds") }
    let fixturesDir = absolute(opts["--fixtures"] ?? "Tests/Fixtures")
    let assetsOpt = opts["--assets"] ?? ProcessInfo.processInfo.environment["WORKBENCH_ASSETS"] ?? "../shared/assets"
    let assetsDir: String? = assetsOpt == "none" || !fm.fileExists(atPath: absolute(assetsOpt)) ? nil : absolute(assetsOpt)
    let scratch = absolute(opts["--scratch"] ?? (NSTemporaryDirectory() + "/workbench-fuzz-\(getpid())"))
    try? fm.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    let keep = flags.contains("--keep") || opts["--only"] != nil
    let verbose = flags.contains("--verbose")

    func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

    let corpus = SeedCorpus(fixtures: fm.fileExists(atPath: fixturesDir) ? fixturesDir : nil, assets: assetsDir,
                            workbench: workbench, scratch: scratch)
    for n in corpus.notes { log("fuzz: note: \(n)") }
    let runner = Runner(workbench: workbench, timeout: timeout, memoryLimitKB: intOpt("--mem-mb", 4096) * 1024)
    let factory = CaseFactory(corpus: corpus)

    if let out = opts["--export-seeds"].map(absolute) {
        // Every seed as files, one folder per seed id, for inspection or manual runs.
        for s in corpus.models + corpus.llama2c + [corpus.sparse, corpus.seed("synthetic/gguf")].compactMap({ $0 }) {
            for (rel, d) in s.files {
                let path = out + "/" + s.id + "/" + rel
                try? fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                _ = fm.createFile(atPath: path, contents: d)
            }
        }
        log("fuzz: seeds written under \(out)")
        try? fm.removeItem(atPath: scratch)
        exit(0)
    }

    // Baseline: every seed must load and run cleanly, or its mutations only test the first error.
    func baseline() -> Int {
        var failures = 0
        let ggufSeed = corpus.seed("synthetic/gguf")!
        for (n, s) in (corpus.models + corpus.llama2c + [corpus.sparse, ggufSeed].compactMap { $0 }).enumerated() {
            for command in s.hasTokenizer ? ["info", "generate", "attribute"] : ["info", "attribute"] {
                var rng = Rng(seed: 0)
                let (argv, aux) = Commands.argv(command, seed: s, rng: &rng)
                let k = Case(format: "baseline", seed: s.id, mutation: "none", files: s.files.merging(aux) { a, _ in a }, argv: argv)
                let r = runner.run(k, in: scratch + "/baseline-\(n)")
                try? fm.removeItem(atPath: scratch + "/baseline-\(n)")
                if r.signaled || r.timedOut || r.status != 0 {
                    failures += 1
                    log("fuzz: baseline: seed \(s.id) fails `\(argv.joined(separator: " "))` (\(r.statusText)): \(String(decoding: r.stderr.prefix(300), as: UTF8.self))")
                }
            }
        }
        return failures
    }
    if opts["--replay"] == nil && opts["--only"] == nil && !flags.contains("--dry-run") {
        let f = baseline()
        if f > 0 { log("fuzz: warning: \(f) baseline runs failed; the formats seeded from them are fuzzed shallowly") }
    }

    // MARK: replay

    if let replay = opts["--replay"] {
        let root = absolute(replay)
        var dirs: [String] = fm.fileExists(atPath: root + "/case.json") ? [root] : []
        if dirs.isEmpty { dirs = ((try? fm.contentsOfDirectory(atPath: root)) ?? []).sorted().map { root + "/" + $0 }.filter { fm.fileExists(atPath: $0 + "/case.json") } }
        var bad = 0, skipped = 0
        for (n, dir) in dirs.enumerated() {
            guard let k = Fixtures.load(dir, corpus: corpus) else { log("skip  \(dir): its seed is not available here"); skipped += 1; continue }
            let r = runner.run(k, in: scratch + "/replay-\(n)")
            let v = Classifier.classify(k, r)
            let failed = [.crash, .hang, .modified].contains(v.outcome)
            if failed { bad += 1 }
            log("\(failed ? "FAIL" : "ok  ")  \((dir as NSString).lastPathComponent): \(v.outcome.rawValue) (\(r.statusText)) \(v.reason.prefix(160))")
            if !keep { try? fm.removeItem(atPath: scratch + "/replay-\(n)") } else { log("      folder: \(scratch)/replay-\(n)/work") }
        }
        log("fuzz: replayed \(dirs.count - skipped) fixtures (\(skipped) skipped): \(bad) failing")
        if !keep { try? fm.removeItem(atPath: scratch) }
        exit(bad == 0 ? 0 : 1)
    }

    // MARK: campaign

    let formats: [String] = {
        let all = corpus.formats
        guard let f = opts["--formats"] else { return all }
        let want = f.split(separator: ",").map(String.init)
        for w in want where !all.contains(w) { fail("--formats: '\(w)' is not available (available: \(all.joined(separator: ", ")))") }
        return want
    }()

    func makeCase(_ index: Int) -> Case {
        var rng = Rng(campaign: seed, run: index)
        return factory.make(format: formats[index % formats.count], rng: &rng)
    }

    let indices: [Int]
    if let only = opts["--only"] {
        guard let i = Int(only) else { fail("--only needs a run index") }
        indices = [i]
    } else { indices = Array(start..<(start + runs)) }
    if flags.contains("--dry-run") {
        for i in indices { let k = makeCase(i); print("\(i) [\(k.format)] \(k.mutation.prefix(150)) :: \(k.argv.joined(separator: " ").prefix(150))") }
        try? fm.removeItem(atPath: scratch)
        exit(0)
    }
    let began = Date()
    let lock = NSLock()
    var records: [Record] = []
    var nextSlot = 0
    DispatchQueue.concurrentPerform(iterations: min(jobs, max(1, indices.count))) { worker in
        while true {
            lock.lock()
            guard nextSlot < indices.count else { lock.unlock(); return }
            let index = indices[nextSlot]; nextSlot += 1
            lock.unlock()
            let k = makeCase(index)
            let dir = scratch + "/run-\(index)"
            let r = runner.run(k, in: dir)
            let v = Classifier.classify(k, r)
            let failing = v.outcome != .clean && v.outcome != .long
            if !(keep && failing) { try? fm.removeItem(atPath: dir) }
            lock.lock()
            records.append(Record(index: index, k: k, result: r, verdict: v))
            let done = records.count
            if verbose && v.outcome != .clean || opts["--only"] != nil {
                log("run \(index) [\(k.format)] \(v.outcome.rawValue) (\(r.statusText), \(String(format: "%.2f", r.seconds)) s): \(k.mutation.prefix(120))")
                log("    argv: \(k.argv.map { $0.count > 60 ? String($0.prefix(60)) + "…" : $0 }.joined(separator: " "))")
                log("    \(v.reason.prefix(300))")
                if keep && failing || opts["--only"] != nil { log("    folder: \(dir)/work") }
            }
            if indices.count >= 20 && done % max(1, indices.count / 10) == 0 {
                log("fuzz: \(done)/\(indices.count) runs, \(Int(Date().timeIntervalSince(began))) s")
            }
            lock.unlock()
        }
    }
    records.sort { $0.index < $1.index }
    let seconds = Date().timeIntervalSince(began)

    // MARK: minimise and save

    var saved: [String: String] = [:]
    if let saveRoot = opts["--save-fixtures"].map(absolute) {
        var seen: Set<String> = []
        for rec in records where [.crash, .modified, .hang].contains(rec.verdict.outcome) && !seen.contains(rec.verdict.signature) {
            seen.insert(rec.verdict.signature)
            let want = rec.verdict.outcome
            var probe = 0
            var m = Minimizer(reproduces: { trial in
                probe += 1
                let dir = scratch + "/min-\(probe)"
                defer { try? fm.removeItem(atPath: dir) }
                let r = runner.run(trial, in: dir)
                return Classifier.classify(trial, r).outcome == want
            }, budget: want == .hang ? 0 : intOpt("--minimise-budget", 200))
            let small = m.minimise(rec.k)
            let name = "\(rec.k.format)-\(want.rawValue)-s\(seed)-r\(rec.index)".replacingOccurrences(of: "+", with: "-")
            do {
                let dir = try Fixtures.save(small, verdict: rec.verdict, under: saveRoot, name: name)
                saved[rec.verdict.signature] = dir
                log("fuzz: saved \(dir) after \(probe) minimisation runs")
            } catch { log("fuzz: could not save \(name): \(error)") }
        }
    }

    // MARK: report

    print(Report.table(records, formats: formats))
    let totals = Dictionary(grouping: records, by: \.verdict.outcome).mapValues(\.count)
    var groups: [String: [Record]] = [:]
    for r in records where r.verdict.outcome != .clean { groups[r.verdict.signature, default: []].append(r) }
    if !groups.isEmpty {
        print("\nfindings (signature: count; reproduce with --seed \(seed) --only RUN):")
        for (sig, rs) in groups.sorted(by: { $0.value.count > $1.value.count }) {
            print("  [\(rs.count)] \(sig.prefix(150))  runs \(rs.prefix(5).map { String($0.index) }.joined(separator: ","))")
        }
    }
    // A single reproduction (--only) writes a report only when asked to.
    let reportPath = absolute(opts["--report"] ?? (opts["--only"] == nil ? "fuzz-report.json" : scratch + "/report.json"))
    let settings: [(String, JSON)] = [
        ("workbench", .string(workbench)), ("seed", .string(String(seed))), ("start", .int(start)), ("runs", .int(indices.count)),
        ("jobs", .int(jobs)), ("timeout", .double(timeout)), ("formats", .array(formats.map(JSON.string))),
        ("assets", assetsDir.map(JSON.string) ?? .raw("null")),
    ]
    try? Report.json(records, formats: formats, settings: settings, seconds: seconds, saved: saved).write(to: URL(fileURLWithPath: reportPath))
    let bad = (totals[.crash] ?? 0) + (totals[.hang] ?? 0) + (totals[.modified] ?? 0)
    print(String(format: "\n%d runs in %.1f s: %d crash, %d hang, %d input modified, %d unclear, %d long, %d leftover; report %@",
                 records.count, seconds, totals[.crash] ?? 0, totals[.hang] ?? 0, totals[.modified] ?? 0, totals[.unclear] ?? 0,
                 totals[.long] ?? 0, totals[.leftover] ?? 0, reportPath))
    if !keep { try? fm.removeItem(atPath: scratch) }
    exit(bad == 0 ? 0 : 1)

}

runMain()
