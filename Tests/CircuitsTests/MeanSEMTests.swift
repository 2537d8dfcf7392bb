import Foundation
import XCTest
@testable import Circuits

/// `MeanSEM` (report text) and `Stat` (report JSON) are one definition of mean ± SEM.
final class MeanSEMTests: XCTestCase {
    func testClosedForm() {
        // 1, 2, 3, 4: mean 2.5, sample variance 5/3, SEM = √(5/3 / 4) = 0.6454972243679028.
        let s = MeanSEM([1, 2, 3, 4])
        XCTAssertEqual(s.n, 4)
        XCTAssertEqual(s.mean, 2.5)
        XCTAssertEqual(s.sem!, (5.0 / 12.0).squareRoot(), accuracy: 1e-15)
        XCTAssertEqual(s.text(), "2.500 ± 0.645")
        XCTAssertNil(MeanSEM([7]).sem)
        XCTAssertEqual(MeanSEM([7]).text(digits: 1), "7.0 (n = 1)")
        XCTAssertEqual(MeanSEM([]).text(), "–")
    }

    func testStatIsMeanSEMBitForBit() throws {
        var rng = SystemRandomNumberGenerator()
        for n in 0...9 {
            let values = (0..<n).map { _ in Double.random(in: -3...5, using: &rng) }
            let a = Stat(values), b = MeanSEM(values)
            XCTAssertEqual(a.n, b.n)
            if n == 0 { XCTAssertNil(a.mean) } else { XCTAssertEqual(a.mean!.bitPattern, b.mean.bitPattern) }
            XCTAssertEqual(a.sem?.bitPattern, b.sem?.bitPattern)
        }
        // Missing values (e.g. an unscored text) are left out, and the JSON keeps explicit nulls.
        let withGaps = Stat([1.0, nil, 3.0] as [Double?])
        XCTAssertEqual(withGaps.n, 2)
        XCTAssertEqual(withGaps.mean, 2)
        XCTAssertEqual(withGaps.sem!, 1, accuracy: 1e-15)
        XCTAssertEqual(withGaps.text, "2.000 ± 1.000")
        let empty = String(decoding: try JSONEncoder().encode(Stat([Double]())), as: UTF8.self)
        XCTAssertTrue(empty.contains("\"mean\":null") && empty.contains("\"sem\":null"), empty)
    }
}
