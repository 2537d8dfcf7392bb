import Circuits
import XCTest

/// RUR and seq-rep-n against values computed by hand.
final class RepetitionMetricsTests: XCTestCase {
    func words(_ s: String) -> [Substring] { s.split(separator: " ") }

    func testLoopedSentence() {
        // "the cat sat the cat sat the cat": 8 words, 3 distinct.
        let w = words("the cat sat the cat sat the cat")
        XCTAssertEqual(RepetitionMetrics.rur(w)!, 3.0 / 8, accuracy: 1e-15)
        XCTAssertEqual(RepetitionMetrics.seqRep(w, n: 1)!, 5.0 / 8, accuracy: 1e-15)
        // bigrams: the-cat, cat-sat, sat-the, the-cat, cat-sat, sat-the, the-cat → 3 distinct of 7.
        XCTAssertEqual(RepetitionMetrics.seqRep(w, n: 2)!, 4.0 / 7, accuracy: 1e-15)
        // trigrams: 6, distinct (the cat sat), (cat sat the), (sat the cat) → 3.
        XCTAssertEqual(RepetitionMetrics.seqRep(w, n: 3)!, 0.5, accuracy: 1e-15)
        // 4-grams: 5, distinct 3.
        XCTAssertEqual(RepetitionMetrics.seqRep(w, n: 4)!, 2.0 / 5, accuracy: 1e-15)
    }

    func testNoRepetitionAndEdges() {
        let w = words("one two three four")
        XCTAssertEqual(RepetitionMetrics.rur(w), 1)
        for n in RepetitionMetrics.orders { XCTAssertEqual(RepetitionMetrics.seqRep(w, n: n), 0) }
        // Same word five times: RUR 1/5; every n-gram is the same one.
        let same = [7, 7, 7, 7, 7]
        XCTAssertEqual(RepetitionMetrics.rur(same)!, 0.2, accuracy: 1e-15)
        XCTAssertEqual(RepetitionMetrics.seqRep(same, n: 4)!, 0.5, accuracy: 1e-15)   // 2 four-grams, 1 distinct
        // RUR = 1 − seq-rep-1 on any sequence.
        let ids = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]
        XCTAssertEqual(RepetitionMetrics.rur(ids)!, 1 - RepetitionMetrics.seqRep(ids, n: 1)!, accuracy: 1e-15)
        // Too short: no value, not 0.
        XCTAssertNil(RepetitionMetrics.rur([Int]()))
        XCTAssertNil(RepetitionMetrics.seqRep([1, 2, 3], n: 4))
    }
}
