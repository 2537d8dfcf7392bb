import Foundation

// MARK: - Mean ± standard error of the mean, the one definition every report uses
//
// SEM = sample standard deviation (n − 1) / √n; one value has no SEM (nil), so a
// single run is never printed as if it had an error bar.

public struct MeanSEM: Equatable, Sendable {
    public var n: Int
    public var mean: Double
    /// nil for n < 2.
    public var sem: Double?

    public init(_ values: [Double]) {
        n = values.count
        mean = values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
        if values.count > 1 {
            let m = mean
            let variance = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count - 1)
            sem = (variance / Double(values.count)).squareRoot()
        } else {
            sem = nil
        }
    }

    /// "2.500 ± 0.645", "7.0 (n = 1)", "–" for no values.
    public func text(digits: Int = 3) -> String {
        guard n > 0 else { return "–" }
        guard let sem else { return String(format: "%.\(digits)f (n = 1)", mean) }
        return String(format: "%.\(digits)f ± %.\(digits)f", mean, sem)
    }
}
