import Foundation

// MARK: - Within-sequence repetition
//
// Two metrics over one generated sequence (token ids of the continuation only, the prompt excluded):
// - RUR, the repetition-unique ratio of SparC³ (Eq. 11): |set(T)| / |T|. 1 = no token repeats; a greedy
//   loop drives it down. RUR = 1 − seq-rep-1.
// - seq-rep-n (Welleck et al. 2020, "Neural Text Generation with Unlikelihood Training", §6;
//   facebookresearch/unlikelihood_training custom/metrics.py `ngram_metrics`, pct_repeat_ngrams):
//   1 − |unique n-grams| / |n-grams| of the sequence, for n = 1…4.
// Both are within-sample; DExperts' dist-n is across a prompt's samples and is a different quantity.
// A sequence too short to hold an n-gram has no value (nil), never 0: an empty continuation is not
// "no repetition".

public enum RepetitionMetrics {
    /// |unique| / |T|; nil for an empty sequence.
    public static func rur<T: Hashable>(_ tokens: [T]) -> Double? {
        tokens.isEmpty ? nil : Double(Set(tokens).count) / Double(tokens.count)
    }

    /// 1 − |unique n-grams| / |n-grams|; nil when the sequence has fewer than n tokens.
    public static func seqRep<T: Hashable>(_ tokens: [T], n: Int) -> Double? {
        precondition(n >= 1, "seq-rep-n needs n ≥ 1")
        guard tokens.count >= n else { return nil }
        let grams = (0...(tokens.count - n)).map { Array(tokens[$0..<($0 + n)]) }
        return 1 - Double(Set(grams).count) / Double(grams.count)
    }

    /// The orders reported (n = 1…4).
    public static let orders = Array(1...4)
}
