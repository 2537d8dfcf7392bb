import Circuits
import Foundation
import Tokenize
import Transformer

// workbench — attribution-guided pruning of decoder LLMs.

let commands: [Command.Type] = [InfoCommand.self, TokenizeCommand.self, GenerateCommand.self, PerplexityCommand.self,
                                BenchCommand.self, AttributeCommand.self, HeatmapCommand.self, PruneCommand.self,
                                SparsityCommand.self, CircuitCommand.self, CircuitCompareCommand.self, TasksIOICommand.self, TasksGreaterThanCommand.self, TaskEvalCommand.self, CorrectCommand.self, SplitCommand.self,
                                ToxicityCommand.self, MergeCommand.self, EvaluateCommand.self, SelectCommand.self,
                                GraphAttributeCommand.self, GraphEvalCommand.self, QuantizeCommand.self, ImatrixCommand.self, FaultsCommand.self]

func topHelp() -> String {
    var s = "OVERVIEW: Attribution-guided pruning workbench for Llama and OPT models.\n\nUSAGE: workbench <subcommand> [options]\n\nSUBCOMMANDS:\n"
    for c in commands { s += "  " + c.spec.name.padding(toLength: 20, withPad: " ", startingAt: 0) + c.spec.abstract + "\n" }
    s += "\n  See 'workbench <subcommand> --help' for detailed help.\n"
    return s
}

func usageFail(_ message: String, _ usage: String, _ cmd: String?) -> Never {
    Out.err("Error: \(message)")
    Out.err("Usage: \(usage)")
    Out.err("  See '\(cmd.map { "workbench \($0) --help" } ?? "workbench --help")' for more information.")
    exit(64)
}

BLASKernelCheck.runAtStartup()     // first: may re-execute the process with a better OpenBLAS core
StandardStreams.prepare()
Allocator.retainFreedBuffers()
var argv = Array(CommandLine.arguments.dropFirst())
guard let name = argv.first else { usageFail("Missing subcommand", "workbench <subcommand> [options]", nil) }
if name == "--help" || name == "-h" || name == "help" { Out.write(topHelp()); exit(0) }
if name == "--version" { Out.print(Workbench.version); exit(0) }
// Two-word commands ("tasks ioi") are matched first.
if argv.count >= 2, let two = commands.first(where: { $0.spec.name == name + " " + argv[1] }) {
    argv.removeFirst()
    argv[0] = two.spec.name
}
let family = commands.map { $0.spec.name }.filter { $0.hasPrefix(name + " ") }
if !family.isEmpty, argv.first == name, argv.count == 2, argv[1] == "--help" || argv[1] == "-h" {
    var s = "OVERVIEW: workbench \(name) <kind>: one of the commands below.\n\nUSAGE: workbench \(name) <kind> [options]\n\nKINDS:\n"
    for c in commands where c.spec.name.hasPrefix(name + " ") {
        s += "  " + String(c.spec.name.dropFirst(name.count + 1)).padding(toLength: 16, withPad: " ", startingAt: 0) + c.spec.abstract + "\n"
    }
    s += "\nOPTIONS:\n  --help                      Show help information.\n\n  See 'workbench \(name) <kind> --help' for a kind's options.\n"
    Out.write(s); exit(0)
}
if !family.isEmpty, argv.first == name {
    usageFail(argv.count > 1 ? "Unknown \(name) '\(QuotedName.safe(argv[1]))'" : "Missing \(name) kind", family.map { "workbench \($0) [options]" }.joined(separator: " | "), nil)
}
guard let cmd = commands.first(where: { $0.spec.name == argv[0] }) else {
    usageFail("Unknown subcommand '\(QuotedName.safe(name))'", "workbench <subcommand> [options]", nil)
}
argv.removeFirst()
do {
    let args = try Args(argv, spec: cmd.spec)
    if args.wantsHelp { Out.write(cmd.spec.helpText); exit(0) }
    try cmd.run(args)
} catch let e as UsageError {
    usageFail(e.message, cmd.spec.usage, cmd.spec.name)
} catch {
    Out.err("Error: \(error.localizedDescription)")
    exit(1)
}
