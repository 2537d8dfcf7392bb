import COpenBLAS
import Foundation
import Synchronization

// MARK: - A persistent worker team for fork-join regions

/// Runs `body(0..<ways)` with the caller taking part 0 and persistent helper
/// threads the rest. A prefill makes ~330 fork-join regions per forward, an
/// LRP pass ~1000; GCD's `concurrentPerform` parks its workers between them
/// and each wake-up costs tens of µs on this VM (measured: 1.71–1.85 of 2
/// cores busy). Helpers here spin for a short window after each region, then
/// sleep on a condition variable, so back-to-back regions start at once while
/// an idle process burns no CPU. The window adapts (`SpinWindow`) to the gaps
/// between regions.
///
/// Parts are claimed, not assigned: after its own part the caller runs every
/// part no helper has claimed yet. On a machine shared with other processes a
/// helper is often off its core when a region starts (perf under load: a
/// quarter of the process's samples were the caller spinning in `run` for a
/// helper that had not begun); the caller now does that part itself instead
/// of waiting for the helper to be scheduled. Which thread runs a part changes
/// nothing in its result: every part has its own range and outputs, as when a
/// region runs inline.
///
/// One level only: a region started while another runs (from a helper, or a
/// second thread) executes its parts inline, in order.
public final class WorkerTeam: @unchecked Sendable {
    /// One helper per extra core BLAS splitting uses (none on one core).
    public static let shared = WorkerTeam(helpers: max(0, BLAS.defaultWays - 1))

    /// Helper threads (workers besides the caller).
    public let helpers: Int
    /// The current region: generation << 16 | parts << 8 | next unclaimed part.
    /// A claim is a compare-exchange on the whole word, so a helper holding a
    /// stale region's value can never claim a part of the next one.
    private let region = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)       // parts of the current region run to the end
    private let busy = Atomic<Bool>(false)      // a region is in flight
    private let sleeping = Atomic<Int>(0)       // helpers parked on `wake`
    private let wake = NSCondition()
    private var job: ((Int) -> Void)?           // set only while a region runs
    /// Spin iterations before the caller, waiting for a part a helper is
    /// running, yields its core between checks (a preempted helper may be
    /// queued behind it).
    private let yieldAfter = 2_000

    /// `startThreads: false` makes a team whose helpers never run (tests: the caller must claim every part).
    init(helpers: Int, startThreads: Bool = true) {
        precondition(helpers < 255, "parts are counted in 8 bits")
        self.helpers = helpers
        for h in 0..<(startThreads ? helpers : 0) {
            // Helpers hold the team: a team lives as long as the process.
            let t = Thread { [self] in self.helperLoop() }
            t.name = "workbench-worker-\(h + 1)"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    private static func generation(_ r: Int) -> Int { r >> 16 }

    /// Claims the next part of region `r`'s generation; nil when all are claimed or the region is gone.
    private func claim(generation g: Int) -> Int? {
        var r = region.load(ordering: .acquiring)
        while WorkerTeam.generation(r) == g {
            let parts = (r >> 8) & 0xff, next = r & 0xff
            guard next < parts else { return nil }
            let (done, now) = region.compareExchange(expected: r, desired: r + 1, ordering: .acquiringAndReleasing)
            if done { return next }
            r = now
        }
        return nil
    }

    /// Calls `body(i)` for every i in 0..<parts: part 0 on the caller, the
    /// others on whichever worker claims them first (parts ≤ helpers + 1).
    /// Returns when all are done.
    public func run(parts: Int, _ body: (Int) -> Void) {
        guard parts > 1, helpers >= parts - 1,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            for i in 0..<parts { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            job = escapable
            finished.store(0, ordering: .relaxed)
            let g = WorkerTeam.generation(region.load(ordering: .relaxed)) + 1
            region.store(g << 16 | parts << 8 | 1, ordering: .sequentiallyConsistent)   // part 0 is the caller's
            if sleeping.load(ordering: .sequentiallyConsistent) > 0 {
                wake.lock(); wake.broadcast(); wake.unlock()
            }
            escapable(0)
            var ran = 1
            while let i = claim(generation: g) { escapable(i); ran += 1 }
            var spins = 0
            while finished.load(ordering: .acquiring) < parts - ran {
                spins += 1
                if spins < yieldAfter { spinPause() } else { sched_yield() }
            }
            job = nil
        }
        busy.store(false, ordering: .releasing)
    }

    private func helperLoop() {
        var seen = 0, window = SpinWindow()
        while true {
            var spins = 0, timedFrom: UInt64 = 0, parkedAt: UInt64 = 0
            while WorkerTeam.generation(region.load(ordering: .acquiring)) == seen {
                spins += 1
                // The clock is read only in gaps longer than a few spins (back-to-back regions pay nothing).
                if spins == SpinWindow.timedFrom { timedFrom = monotonicNanoseconds() }
                if spins < window.spins { spinPause(); continue }
                parkedAt = monotonicNanoseconds()
                wake.lock()
                sleeping.add(1, ordering: .sequentiallyConsistent)
                while WorkerTeam.generation(region.load(ordering: .sequentiallyConsistent)) == seen { wake.wait() }
                sleeping.subtract(1, ordering: .sequentiallyConsistent)
                wake.unlock()
            }
            var gap = spins
            if parkedAt != 0 {
                // The parked time in spin iterations, at the pace this wait's own spinning measured.
                let perSpin = Double(max(parkedAt &- timedFrom, 1)) / Double(max(spins - SpinWindow.timedFrom, 1))
                gap = spins + Int(min(Double(monotonicNanoseconds() &- parkedAt) / perSpin, 1e12))
            }
            window.arrived(after: gap)
            seen = WorkerTeam.generation(region.load(ordering: .acquiring))
            // The job stays set until every claimed part has finished.
            while let i = claim(generation: seen) {
                job?(i)
                finished.add(1, ordering: .releasing)
            }
        }
    }
}

/// How long a WorkerTeam helper spins for the next region before it parks on the
/// condition variable, adapted to the gaps between regions. Pure: the helper loop
/// measures the gaps (in spin iterations; a parked helper's wait converted at its
/// own measured spin pace), tests drive it with made-up ones.
struct SpinWindow {
    /// Spin iterations at most: ≈ 50–100 µs here, longer than the serial gaps
    /// between the regions of one forward.
    static let limit = 20_000
    /// At least ≈ 2–5 µs, once gaps have been long.
    static let floor = 500
    /// The helper starts its clock at this spin (gaps this short are never timed).
    static let timedFrom = 64
    private(set) var spins = limit

    /// A region arrived `gap` spin iterations after the helper began to wait for it.
    /// Halves the window when even the longest window would have spun the gap out
    /// (a phase of long serial gaps: spinning would only take a core from other
    /// processes on a shared machine); doubles it back otherwise — also after a gap
    /// the helper parked through: halving on every park kept the window at its
    /// floor once it got there, in a phase whose gaps lie between floor and limit.
    mutating func arrived(after gap: Int) {
        spins = gap <= Self.limit ? min(Self.limit, spins * 2) : max(Self.floor, spins / 2)
    }
}

@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// A short busy-wait step that does not starve a sibling hyper-thread.
@inline(__always)
func spinPause() { wb_cpu_relax() }
