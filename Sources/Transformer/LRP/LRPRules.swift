import Foundation

// MARK: - AttnLRP rules in Gradient×Input form
//
// Relevance at any tensor x is R_x = x ⊙ δx, where δ is a *modified* gradient
// (Achtibat et al., "AttnLRP", ICML 2024; the `lxt` package's efficient mode).
// Linear layers, residual adds, RoPE, softmax and the causal mask take the plain
// gradient; the functions below are the only places the gradient is modified.
// Each is small, named after its rule, and cited.

/// Which rules are on. `.attnLRP` is the default; `.cpLRP` stops the gradient
/// through q, k and the gate (Ali et al. 2022 CP-LRP, lxt `patch_cp_attention`);
/// `.gradient` switches every rule off (plain autograd, used for the `gradient`
/// baseline and the finite-difference check).
public struct LRPRules: Equatable, Sendable {
    public enum Variant: String, Sendable { case attnLRP = "attnlrp", cpLRP = "cp-lrp", gradient }
    public var variant: Variant
    /// LRP-ε on linear layers (z + ε·sign(z)); 0 = off (lxt efficient mode has none).
    public var epsilon: Float

    public init(_ variant: Variant = .attnLRP, epsilon: Float = 0) { self.variant = variant; self.epsilon = epsilon }
    public static let attnLRP = LRPRules(.attnLRP)
    public static let cpLRP = LRPRules(.cpLRP)
    public static let gradient = LRPRules(.gradient)

    /// Norm rule on? (stop-gradient through the normaliser).
    public var normIsConstant: Bool { variant != .gradient }

    /// Factor on the gradient reaching q and k (after RoPE, before GQA sharing).
    /// AttnLRP Prop. 3.3 applied twice: O = A·V is bilinear (½ to A) and
    /// A = softmax(QKᵀ) is bilinear in Q, K (½ each) → ¼. CP-LRP: 0 (A constant).
    public var qkFactor: Float {
        switch variant { case .attnLRP: return 0.25; case .cpLRP: return 0; case .gradient: return 1 }
    }
    /// Factor on the gradient reaching v: the uniform rule of Prop. 3.3 on O = A·V
    /// gives ½; CP-LRP treats A as constant so V takes all of it (1).
    public var vFactor: Float {
        switch variant { case .attnLRP: return 0.5; case .cpLRP, .gradient: return 1 }
    }
    /// Factors on the gradient reaching (gate branch, up branch) of gate ⊙ up:
    /// uniform rule (Prop. 3.3 for element-wise products) ½ each; CP-LRP stops
    /// the gate (0, 1); plain gradient (1, 1).
    public var gateUpFactors: (gate: Float, up: Float) {
        switch variant { case .attnLRP: return (0.5, 0.5); case .cpLRP: return (0, 1); case .gradient: return (1, 1) }
    }
}

// MARK: - Rule functions

/// Identity rule for an element-wise activation y = f(x) (AttnLRP Eq. 9 / Prop. 3.2):
/// R_x = R_y, i.e. the modified gradient is δx = δy · f(x)/x. Guarded at x ≈ 0
/// as lxt does (x + 1e-10 in the denominator would explode; there y ≈ x·f'(0), so
/// the ratio tends to f'(0)).
@inline(__always)
func identityRuleGradient(dy: Float, x: Float, y: Float, slopeAtZero: Float) -> Float {
    abs(x) < 1e-12 ? dy * slopeAtZero : dy * (y / x)
}

/// SwiGLU backward, post = silu(gate) ⊙ up, vectorised:
/// - the gate ⊙ up product takes the uniform rule (AttnLRP Prop. 3.3 on an
///   element-wise product): δsilu = fg·up·δpost, δup = fu·silu(gate)·δpost;
/// - SiLU takes the identity rule (Eq. 9 / Prop. 3.2): δgate = δsilu·f(x)/x, and
///   for SiLU f(x)/x = σ(x) exactly, so no guard at x = 0 is needed (σ(0) = ½ is
///   `identityRuleGradient`'s slope at zero);
/// - `plainGradient`: δgate = δsilu·σ(x)(1 + x(1 − σ(x))).
/// δup overwrites `dPost` element by element (each δpost is read once).
@inline(__always)
func swiGLUBackward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, dPost: UnsafeMutablePointer<Float>,
                    dGate: UnsafeMutablePointer<Float>, count n: Int, gateFactor fg: Float, upFactor fu: Float,
                    plainGradient: Bool) {
    let g = UnsafeRawPointer(gate), u = UnsafeRawPointer(up), dp = UnsafeMutableRawPointer(dPost), dg = UnsafeMutableRawPointer(dGate)
    var i = 0
    while i + 8 <= n {
        let x = g.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        let y = u.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        let d = dp.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        let sig = 1 / (1 + expSIMD(-x))
        let dAct = fg * y * d
        let dx = plainGradient ? dAct * sig * (1 + x * (1 - sig)) : dAct * sig
        dg.storeBytes(of: dx, toByteOffset: i * 4, as: SIMD8<Float>.self)
        dp.storeBytes(of: fu * x * sig * d, toByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n {
        let x = gate[i], sig = 1 / (1 + fastExp(-x)), dAct = fg * up[i] * dPost[i]
        dGate[i] = plainGradient ? dAct * sig * (1 + x * (1 - sig)) : dAct * sig
        dPost[i] = fu * x * sig * dPost[i]
        i += 1
    }
}

/// LRP-ε on a linear layer z = Wx + b (SparC³ Eq. 9): R_{i←j} = z_ij/(z_j + ε·sign(z_j)) · R_j.
/// In Gradient×Input form the incoming gradient is rescaled by z/(z + ε·sign z)
/// before the plain backward through W (sign(0) = 1).
@inline(__always)
func epsilonRuleScale(z: Float, epsilon: Float) -> Float {
    let den = z + epsilon * (z >= 0 ? 1 : -1)
    return z / den
}

/// RMSNorm rule (AttnLRP §3.3, lxt `rms_norm_forward`): y = x · s · g with
/// s = 1/rms(x) held constant → δx = δy · s · g (a linear map; conserves R up to
/// nothing, since the norm has no bias). Plain-gradient variant adds the term
/// through s: −x · s³/d · Σ_j δy_j g_j x_j.
func rmsNormBackward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, inv: UnsafePointer<Float>, g: [Float],
                     dx: UnsafeMutablePointer<Float>, rows: Int, d: Int, constantNormaliser: Bool, accumulate: Bool) {
    g.withUnsafeBufferPointer { gp in
        parallelRows(rows, work: rows * d) { range in
            for r in range {
                let s = inv[r], dyr = dy + r * d, xr = x + r * d, dxr = dx + r * d
                if constantNormaliser {
                    // x itself is not read: callers may free it (LRP keeps only what it needs).
                    for j in 0..<d {
                        let v = dyr[j] * gp[j] * s
                        dxr[j] = accumulate ? dxr[j] + v : v
                    }
                    continue
                }
                var dot: Float = 0
                for j in 0..<d { dot += dyr[j] * gp[j] * xr[j] }         // plain gradient only (tests)
                let corr = dot * s * s * s / Float(d)
                for j in 0..<d {
                    let v = dyr[j] * gp[j] * s - xr[j] * corr
                    dxr[j] = accumulate ? dxr[j] + v : v
                }
            }
        }
    }
}

/// LayerNorm rule (lxt `layer_norm_forward`, the GPT-2 patch): y = (x − μ)·s·γ + β
/// with s = 1/σ held constant; the mean subtraction stays differentiable, so
/// δx = s·(γδy − mean(γδy)). β absorbs its share of relevance. Plain-gradient
/// variant adds the term through σ.
func layerNormBackward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, inv: UnsafePointer<Float>, g: [Float],
                       dx: UnsafeMutablePointer<Float>, rows: Int, d: Int, constantNormaliser: Bool, accumulate: Bool) {
    g.withUnsafeBufferPointer { gp in
        parallelRows(rows, work: rows * d) { range in
            for r in range {
                let s = inv[r], dyr = dy + r * d, xr = x + r * d, dxr = dx + r * d
                var mgd: Float = 0
                for j in 0..<d { mgd += gp[j] * dyr[j] }
                mgd /= Float(d)
                if constantNormaliser {
                    // δx = s·(γδy − mean(γδy)); x is not read.
                    for j in 0..<d {
                        let v = s * (gp[j] * dyr[j] - mgd)
                        dxr[j] = accumulate ? dxr[j] + v : v
                    }
                    continue
                }
                var mean: Float = 0
                for j in 0..<d { mean += xr[j] }
                mean /= Float(d)
                var dot: Float = 0                                  // Σ γδy · x̂
                for j in 0..<d { dot += gp[j] * dyr[j] * (xr[j] - mean) * s }
                let corr = dot / Float(d)
                for j in 0..<d {
                    let xhat = (xr[j] - mean) * s
                    let v = s * (gp[j] * dyr[j] - mgd - xhat * corr)
                    dxr[j] = accumulate ? dxr[j] + v : v
                }
            }
        }
    }
}
