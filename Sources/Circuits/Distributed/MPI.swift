#if canImport(Glibc)
import Glibc
#endif
import Foundation

// MARK: - MPI, loaded at run time
//
// The workbench never links MPI: a single-machine build and run need no MPI at all. When the
// process was started by Open MPI's launcher (mpirun/mpiexec/orted set OMPI_COMM_WORLD_SIZE),
// `MPI.launched()` dlopens libmpi.so.40 (or $WORKBENCH_LIBMPI) with RTLD_GLOBAL (Open MPI's
// own plugins resolve symbols from it) and looks up the handful of calls attribution needs.
//
// ABI: in Open MPI, MPI_Comm and MPI_Datatype are pointers to exported objects
// (MPI_COMM_WORLD = &ompi_mpi_comm_world, MPI_DOUBLE = &ompi_mpi_double), and
// MPI_STATUS_IGNORE is NULL. MPICH and its derivatives (Intel MPI, MVAPICH, Cray MPICH) use
// integer handles instead, so the same calls cannot be made through one declaration; a run
// launched by MPICH's Hydra (PMI_RANK without OMPI_*) or a libmpi without `ompi_mpi_comm_world`
// is refused with that explanation, and `--shard K/N` + `workbench merge` is the way there.

/// The MPI job this process belongs to (one per process, never finalized twice).
public final class MPI {
    public let rank: Int
    public let size: Int
    /// Ranks on this machine (Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE), for sharing its cores.
    public let localSize: Int
    /// MPI_Get_library_version's first line.
    public let library: String

    typealias Handle = UnsafeMutableRawPointer
    typealias InitFn = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> Int32
    typealias CommIntFn = @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    typealias SendFn = @convention(c) (UnsafeRawPointer, Int32, Handle, Int32, Int32, Handle) -> Int32
    typealias RecvFn = @convention(c) (UnsafeMutableRawPointer, Int32, Handle, Int32, Int32, Handle, UnsafeMutableRawPointer?) -> Int32
    typealias CommFn = @convention(c) (Handle) -> Int32
    typealias AbortFn = @convention(c) (Handle, Int32) -> Int32
    typealias VoidFn = @convention(c) () -> Int32
    typealias VersionFn = @convention(c) (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Int32

    let world: Handle, double: Handle
    let send: SendFn, recv: RecvFn, barrier: CommFn, abortFn: AbortFn, finalizeFn: VoidFn
    private var finalized = false

    /// Largest element count per message (MPI counts are 32-bit ints).
    static let chunk = 1 << 24

    /// The MPI job when this process was launched by an MPI launcher with more than one rank;
    /// nil for a plain run. Throws when launched by MPI but the library cannot be used.
    public static func launched(environment env: [String: String] = ProcessInfo.processInfo.environment) throws -> MPI? {
        if let n = env["OMPI_COMM_WORLD_SIZE"] {
            guard let size = Int(n), size >= 1 else { throw DistributedError.mpiUnavailable(reason: "OMPI_COMM_WORLD_SIZE is '\(n)'") }
            if size == 1 { return nil }                                 // one rank: a plain run
            return try MPI(library: env["WORKBENCH_LIBMPI"] ?? "libmpi.so.40", localSize: Int(env["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? "") ?? size)
        }
        if let n = env["PMI_SIZE"], (Int(n) ?? 0) > 1 {
            throw DistributedError.mpiUnavailable(reason: "this looks like an MPICH-family launcher (PMI_SIZE=\(n), no OMPI_COMM_WORLD_SIZE). "
                + "The workbench loads Open MPI at run time and speaks its ABI (pointer handles); MPICH, Intel MPI and MVAPICH use integer "
                + "handles and are not supported. Launch with Open MPI's mpirun, or run each shard with --shard K/N and 'workbench merge' the parts")
        }
        return nil
    }

    init(library path: String, localSize: Int) throws {
        guard let lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL) else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown reason"
            throw DistributedError.mpiUnavailable(reason: "launched by Open MPI (OMPI_COMM_WORLD_SIZE is set) but \(path) cannot be loaded: \(why). "
                + "Install Open MPI's library (Debian: libopenmpi3 / libopenmpi-dev) or set WORKBENCH_LIBMPI to its path")
        }
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let p = dlsym(lib, name) else {
                if name.hasPrefix("ompi_") {
                    throw DistributedError.mpiUnavailable(reason: "\(path) is not Open MPI (no '\(name)'): MPICH-family libraries use integer "
                        + "handles, which this build does not speak; use Open MPI, or --shard K/N and 'workbench merge'")
                }
                throw DistributedError.mpiUnavailable(reason: "\(path) has no '\(name)'")
            }
            return p
        }
        func fn<T>(_ name: String, _: T.Type) throws -> T { unsafeBitCast(try symbol(name), to: T.self) }
        world = try symbol("ompi_mpi_comm_world")
        double = try symbol("ompi_mpi_double")
        send = try fn("MPI_Send", SendFn.self)
        recv = try fn("MPI_Recv", RecvFn.self)
        barrier = try fn("MPI_Barrier", CommFn.self)
        abortFn = try fn("MPI_Abort", AbortFn.self)
        finalizeFn = try fn("MPI_Finalize", VoidFn.self)
        let initFn = try fn("MPI_Init", InitFn.self), rankFn = try fn("MPI_Comm_rank", CommIntFn.self)
        let sizeFn = try fn("MPI_Comm_size", CommIntFn.self), versionFn = try fn("MPI_Get_library_version", VersionFn.self)
        try Self.check("MPI_Init", initFn(nil, nil))
        var r: Int32 = 0, s: Int32 = 0
        try Self.check("MPI_Comm_rank", rankFn(world, &r))
        try Self.check("MPI_Comm_size", sizeFn(world, &s))
        var buf = [CChar](repeating: 0, count: 8192), len: Int32 = 0
        _ = versionFn(&buf, &len)
        rank = Int(r); size = Int(s); self.localSize = max(1, localSize)
        library = String(cString: buf).split(separator: "\n").first.map(String.init) ?? "unknown MPI"
    }

    static func check(_ call: String, _ code: Int32) throws {
        if code != 0 { throw DistributedError.mpiFailed(call: call, code: code) }
    }

    /// Sends `values` to `dest` in chunks of `chunk` doubles (tag = 0; MPI keeps the order between two ranks).
    public func send(_ values: UnsafeBufferPointer<Double>, to dest: Int) throws {
        if values.isEmpty { return }
        var lo = 0
        repeat {
            let n = min(Self.chunk, values.count - lo)
            try Self.check("MPI_Send", send(UnsafeRawPointer(values.baseAddress! + lo), Int32(n), double, Int32(dest), 0, world))
            lo += n
        } while lo < values.count
    }

    /// Receives `acc.count` doubles from `source` chunk by chunk and adds them: acc[i] += received[i].
    public func receiveAdding(into acc: UnsafeMutableBufferPointer<Double>, from source: Int, buffer: inout [Double]) throws {
        if acc.isEmpty { return }
        var lo = 0
        repeat {
            let n = min(Self.chunk, acc.count - lo)
            if buffer.count < n { buffer = [Double](repeating: 0, count: n) }
            try buffer.withUnsafeMutableBufferPointer { b in
                try Self.check("MPI_Recv", recv(b.baseAddress!, Int32(n), double, Int32(source), 0, world, nil))
                for i in 0..<n { acc[lo + i] += b[i] }
            }
            lo += n
        } while lo < acc.count
    }

    public func barrierAll() throws { try Self.check("MPI_Barrier", barrier(world)) }

    /// Ends the MPI job normally (every rank calls it once).
    public func finalize() {
        guard !finalized else { return }
        finalized = true
        _ = finalizeFn()
    }

    /// Ends every rank of the job (the launcher reports which rank aborted with `code`).
    public func abort(_ code: Int32) -> Never {
        _ = abortFn(world, code)
        exit(code)
    }
}
