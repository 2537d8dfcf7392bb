import Foundation

// MARK: - Progress line on stderr

/// "label: 12/128 windows, 512.3 tok/s, ETA 0:42" redrawn in place on stderr,
/// at most every 0.5 s; silent when stderr is not wanted (tests).
public final class ProgressLine {
    let label: String
    let total: Int
    let unit: String
    let start = Date()
    var lastDraw = Date.distantPast
    public var enabled: Bool

    public init(_ label: String, total: Int, unit: String, enabled: Bool = true) {
        self.label = label; self.total = total; self.unit = unit; self.enabled = enabled
    }

    /// `done` items of `total`, `tokens` processed so far (for the rate).
    public func update(_ done: Int, tokens: Int, force: Bool = false) {
        guard enabled else { return }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) > 0.5 || done == total else { return }
        lastDraw = now
        let el = now.timeIntervalSince(start)
        let rate = el > 0 ? Double(tokens) / el : 0
        let eta = done > 0 ? el / Double(done) * Double(total - done) : 0
        let line = String(format: "\r%@: %d/%d %@, %.1f tok/s, elapsed %@, ETA %@", label, done, total, unit, rate,
                          Self.clock(el), Self.clock(eta))
        StandardStreams.err(done == total ? line + "\n" : line)
    }

    static func clock(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }
}
