import Foundation
import XCTest
import Transformer
import TestSupport

/// `mpirun -np 2 workbench attribute …` (Open MPI, loaded at run time) on stories260K: the file equals
/// a single run's with the same threading and the merge of the same two shards, bit for bit; a rank
/// that fails ends the job with a message naming it, and the job resumes to the same file.
/// Skips with a reason when mpirun is not installed. Runs as root too (CI): the variables Open MPI
/// asks for are set here, and --oversubscribe lets two ranks share fewer cores.
final class MPICLITests: XCTestCase {
    static let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
    let mpiEnv = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1"]
    /// Two ranks on this machine run one BLAS thread each (AttributeCommand shares the cores), and
    /// BLAS's two-way split rounds differently: the single-process reference uses the same setting.
    let oneThread = ["WORKBENCH_BLAS_THREADS": "1"]

    func testTwoRanksWriteTheSingleRunFileAndSurviveARankFailure() throws {
        guard let mpirun = Self.mpirun else { throw XCTSkip("mpirun not found (Open MPI: apt-get install openmpi-bin libopenmpi-dev; scripts/setup.sh does)") }
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        func path(_ n: String) -> String { dir.appendingPathComponent(n).path }
        try ["Once upon a time", "The cat sat on the mat", "Lily had a red ball", "Tom went to the park", "She was very happy"]
            .joined(separator: "\n").write(toFile: path("p.txt"), atomically: true, encoding: .utf8)
        let common = ["attribute", "--model", model, "--prompts", path("p.txt"), "--quiet"]
        let launcher = [mpirun, "--oversubscribe", "-np", "2"]

        let single = try WorkbenchCLI.run(common + ["--out", path("single.safetensors")], environment: oneThread)
        XCTAssertEqual(single.status, 0, single.summary)
        let mpi = try WorkbenchCLI.run(common + ["--out", path("mpi.safetensors")], environment: mpiEnv, timeout: 120, launcher: launcher)
        XCTAssertEqual(mpi.status, 0, mpi.summary)
        XCTAssertTrue(mpi.stdout.contains("ranks: 2"), mpi.stdout)
        XCTAssertEqual(mpi.stdout.components(separatedBy: "output: ").count, 2, "only rank 0 reports\n\(mpi.stdout)")
        XCTAssertTrue(mpi.stderr.contains("MPI: 2 ranks reduced into rank 0") && mpi.stderr.contains("Open MPI"), mpi.stderr)
        let want = try TensorBytes.read(path("single.safetensors"))
        XCTAssertEqual(try TensorBytes.read(path("mpi.safetensors")), want, "2 ranks = one run, bit for bit")
        var m = try SafetensorsFile(path: path("mpi.safetensors")).metadata, w = try SafetensorsFile(path: path("single.safetensors")).metadata
        for k in ["conservation_sum", Safetensors.dataChecksumKey] { m[k] = nil; w[k] = nil }
        XCTAssertEqual(m, w, "the metadata of one run")
        // The same two shards merged: the same file, header included.
        for k in 0..<2 {
            let r = try WorkbenchCLI.run(common + ["--shard", "\(k)/2", "--out", path("p\(k).safetensors")], environment: oneThread)
            XCTAssertEqual(r.status, 0, r.summary)
        }
        let merged = try WorkbenchCLI.run(["merge", path("p0.safetensors"), path("p1.safetensors"), "--out", path("merged.safetensors")])
        XCTAssertEqual(merged.status, 0, merged.summary)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("merged.safetensors"))),
                       try Data(contentsOf: URL(fileURLWithPath: path("mpi.safetensors"))))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".partial") }
        XCTAssertEqual(leftovers, [], "rank checkpoints removed after the output is written")

        // Rank 1 cannot write its checkpoint (a directory is in the way): the job fails naming the rank,
        // writes no output, and once the cause is gone --resume finishes it (rank 0 from its checkpoint if it got that far).
        let blocker = path("again.safetensors.shard-1-of-2.partial")
        try FileManager.default.createDirectory(atPath: blocker, withIntermediateDirectories: false)
        let failed = try WorkbenchCLI.run(common + ["--out", path("again.safetensors")], environment: mpiEnv, timeout: 120, launcher: launcher)
        XCTAssertNotEqual(failed.status, 0, failed.summary)
        XCTAssertTrue(failed.stderr.contains("Error: rank 1 of 2:"), failed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("again.safetensors")))
        try FileManager.default.removeItem(atPath: blocker)
        let resumed = try WorkbenchCLI.run(common + ["--out", path("again.safetensors"), "--resume"], environment: mpiEnv, timeout: 120,
                                           launcher: launcher)
        XCTAssertEqual(resumed.status, 0, resumed.summary)
        XCTAssertEqual(try TensorBytes.read(path("again.safetensors")), want)

        // --shard under mpirun is a usage error (every rank says so; the job exits non-zero).
        let both = try WorkbenchCLI.run(common + ["--shard", "0/2", "--out", path("x.safetensors")], environment: mpiEnv, timeout: 120,
                                        launcher: launcher)
        XCTAssertNotEqual(both.status, 0, both.summary)
        XCTAssertTrue(both.stderr.contains("drop --shard"), both.stderr)
    }

    /// A rank SIGKILLed mid-shard (WORKBENCH_TEST_KILL_AFTER=1:2: rank 1 kills itself after 2 of its 4 samples, just
    /// after its checkpoint): the job fails and Open MPI's report names the rank and the signal, no output is written,
    /// the dead rank's checkpoint holds its 2 samples intact (checksum verified), the checkpoints also finish without
    /// MPI as `--shard K/2` parts that merge to the same file, and `--resume` finishes the job to the bytes of an
    /// uninterrupted `mpirun` run (header included), which are a single run's tensors.
    func testARankKilledMidShardResumesToTheUninterruptedFile() throws {
        guard let mpirun = Self.mpirun else { throw XCTSkip("mpirun not found (Open MPI: apt-get install openmpi-bin libopenmpi-dev; scripts/setup.sh does)") }
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        func path(_ n: String) -> String { dir.appendingPathComponent(n).path }
        try ["Once upon a time", "The cat sat on the mat", "Lily had a red ball", "Tom went to the park", "She was very happy",
             "The dog ran fast", "A bird sang a song", "They played all day"].joined(separator: "\n")
            .write(toFile: path("p.txt"), atomically: true, encoding: .utf8)
        let common = ["attribute", "--model", model, "--prompts", path("p.txt"), "--quiet", "--checkpoint-every", "1"]
        let launcher = [mpirun, "--oversubscribe", "-np", "2"]

        let whole = try WorkbenchCLI.run(common + ["--out", path("whole.safetensors")], environment: mpiEnv, timeout: 120, launcher: launcher)
        XCTAssertEqual(whole.status, 0, whole.summary)
        let killed = try WorkbenchCLI.run(common + ["--out", path("r.safetensors")],
                                          environment: mpiEnv.merging(["WORKBENCH_TEST_KILL_AFTER": "1:2"]) { $1 }, timeout: 120,
                                          launcher: launcher)
        XCTAssertNotEqual(killed.status, 0, killed.summary)
        // Open MPI's own report: "mpirun noticed that process rank 1 with PID … exited on signal 9 (Killed)."
        XCTAssertTrue(killed.stderr.contains("rank 1") && killed.stderr.contains("signal 9"), killed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("r.safetensors")), "no output from a failed job")
        let cp1 = try SafetensorsFile(path: path("r.safetensors.shard-1-of-2.partial"))
        XCTAssertEqual(cp1.metadata["samples_done"], "2", "the dead rank's checkpoint holds the samples done before the kill")
        XCTAssertEqual(cp1.metadata["shard"], "1/2")
        XCTAssertEqual(try cp1.verifyDataChecksum(), .verified)
        // Rank 0's checkpoint (it may or may not have finished its 4 samples when mpirun ended it) is intact too.
        if let cp0 = try? SafetensorsFile(path: path("r.safetensors.shard-0-of-2.partial")) {
            XCTAssertEqual(try cp0.verifyDataChecksum(), .verified)
        }
        // Without MPI too: each rank's checkpoint continues as the part of its shard (`--shard K/2 --resume`; rank 0's
        // may be missing if mpirun ended it before its first sample), and `merge` writes the same file.
        for k in 0..<2 {
            let cp = path("r.safetensors.shard-\(k)-of-2.partial")
            if FileManager.default.fileExists(atPath: cp) { try FileManager.default.copyItem(atPath: cp, toPath: path("q\(k).safetensors.partial")) }
            let r = try WorkbenchCLI.run(common + ["--shard", "\(k)/2", "--out", path("q\(k).safetensors"), "--resume"], environment: oneThread)
            XCTAssertEqual(r.status, 0, r.summary)
        }
        let merged = try WorkbenchCLI.run(["merge", path("q0.safetensors"), path("q1.safetensors"), "--out", path("q.safetensors")])
        XCTAssertEqual(merged.status, 0, merged.summary)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("q.safetensors"))),
                       try Data(contentsOf: URL(fileURLWithPath: path("whole.safetensors"))), "the dead job's checkpoints, finished as shards")

        // A rerun without --resume refuses to overwrite the checkpoints; with it, the job finishes.
        let fresh = try WorkbenchCLI.run(common + ["--out", path("r.safetensors")], environment: mpiEnv, timeout: 120, launcher: launcher)
        XCTAssertNotEqual(fresh.status, 0, fresh.summary)
        XCTAssertTrue(fresh.stderr.contains("--resume"), fresh.stderr)
        let resumed = try WorkbenchCLI.run(common + ["--out", path("r.safetensors"), "--resume"], environment: mpiEnv, timeout: 120,
                                           launcher: launcher)
        XCTAssertEqual(resumed.status, 0, resumed.summary)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("r.safetensors"))),
                       try Data(contentsOf: URL(fileURLWithPath: path("whole.safetensors"))), "resumed = uninterrupted, bit for bit")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".partial") }
        XCTAssertEqual(leftovers, [], "rank checkpoints removed after the output is written")
        // And it is a single run's result (same BLAS threading).
        let single = try WorkbenchCLI.run(common + ["--out", path("single.safetensors")], environment: oneThread)
        XCTAssertEqual(single.status, 0, single.summary)
        XCTAssertEqual(try TensorBytes.read(path("r.safetensors")), try TensorBytes.read(path("single.safetensors")))
    }

    /// An MPICH-family launcher (PMI_SIZE, no OMPI_*) is refused with the reason, before any work.
    func testMPICHLauncherIsRefusedWithTheReason() throws {
        let model = try Assets.path("stories260K/hf")
        let p = try Scratch.dir(self).appendingPathComponent("p.txt").path
        try "Once upon a time\n".write(toFile: p, atomically: true, encoding: .utf8)
        let r = try WorkbenchCLI.run(["attribute", "--model", model, "--prompts", p, "--out", p + ".r"],
                                     environment: ["PMI_SIZE": "2", "PMI_RANK": "0"])
        XCTAssertEqual(r.status, 1, r.summary)
        XCTAssertTrue(r.stderr.contains("MPICH") && r.stderr.contains("--shard K/N"), r.stderr)
        // And a missing Open MPI library under an Open MPI launcher names the library.
        let lib = try WorkbenchCLI.run(["attribute", "--model", model, "--prompts", p, "--out", p + ".r"],
                                       environment: ["OMPI_COMM_WORLD_SIZE": "2", "WORKBENCH_LIBMPI": "/nonexistent/libmpi.so.40"])
        XCTAssertEqual(lib.status, 1, lib.summary)
        XCTAssertTrue(lib.stderr.contains("/nonexistent/libmpi.so.40 cannot be loaded"), lib.stderr)
    }
}
