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
/// an idle process burns no CPU.
///
/// One level only: a region started while another runs (from a helper, or a
/// second thread) executes its parts inline, in order.
public final class WorkerTeam: @unchecked Sendable {
    /// One helper per extra core BLAS splitting uses (none on one core).
    public static let shared = WorkerTeam(helpers: max(0, BLAS.defaultWays - 1))

    /// Helper threads (workers besides the caller).
    public let helpers: Int
    private let generation = Atomic<Int>(0)     // bumped once per region
    private let pending = Atomic<Int>(0)        // helpers still inside the current region
    private let busy = Atomic<Bool>(false)      // a region is in flight
    private let sleeping = Atomic<Int>(0)       // helpers parked on `wake`
    private let wake = NSCondition()
    private var job: ((Int) -> Void)?           // set only while a region runs
    /// Spin iterations before a helper parks: ≈ 50–100 µs here, longer than the
    /// serial gaps between the regions of one forward.
    private let spinLimit = 20_000

    init(helpers: Int) {
        self.helpers = helpers
        for h in 0..<helpers {
            // Helpers hold the team: a team lives as long as the process.
            let t = Thread { [self] in self.helperLoop(index: h + 1) }
            t.name = "workbench-worker-\(h + 1)"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    /// Calls `body(i)` for every i in 0..<parts: part 0 on the caller, parts
    /// 1... on the helpers (parts ≤ helpers + 1). Returns when all are done.
    public func run(parts: Int, _ body: (Int) -> Void) {
        guard parts > 1, helpers >= parts - 1,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            for i in 0..<parts { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            job = { i in if i < parts { escapable(i) } }
            pending.store(helpers, ordering: .sequentiallyConsistent)
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleeping.load(ordering: .sequentiallyConsistent) > 0 {
                wake.lock(); wake.broadcast(); wake.unlock()
            }
            escapable(0)
            while pending.load(ordering: .acquiring) > 0 { spinPause() }
            job = nil
        }
        busy.store(false, ordering: .releasing)
    }

    private func helperLoop(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < spinLimit { spinPause(); continue }
                wake.lock()
                sleeping.add(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                sleeping.subtract(1, ordering: .sequentiallyConsistent)
                wake.unlock()
            }
            seen = generation.load(ordering: .acquiring)
            job?(index)
            pending.subtract(1, ordering: .releasing)
        }
    }
}

/// A short busy-wait step that does not starve a sibling hyper-thread.
@inline(__always)
func spinPause() { wb_cpu_relax() }
