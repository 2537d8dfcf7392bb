# Sourced by the experiment scripts (bash and awk only): the environment every run needs, and the report helpers
# more than one report uses. Kept in one place so a default (the model, the binary, where the assets are) or a
# statistic (the SEM) cannot drift between reports. Source it first thing, inside the script's main function:
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# exp_env [REPO]: cd to the checkout (default: the one this file is in) and default the knobs every script reads:
#   MODEL, WORKBENCH_BIN (and WB, the same path, for the scripts that call it that) and WORKBENCH_ASSETS (exported:
#   the binary finds the evaluation sets through it).
exp_env() {
  REPO="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
  cd "$REPO"
  MODEL="${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
  WORKBENCH_BIN="${WORKBENCH_BIN:-$REPO/.build/release/workbench}"
  WB="$WORKBENCH_BIN"
  export WORKBENCH_ASSETS="${WORKBENCH_ASSETS:-$REPO/../shared/assets}"
}

# exp_one_thread: one thread per process unless the caller set WORKBENCH_BLAS_THREADS / WORKBENCH_SERIAL (set them
# empty to split). On a shared, oversubscribed machine the two-way split spends half its CPU spin-waiting for a
# descheduled partner (measured: task-eval of 96 prompts, 13.4 s user / 45 s wall split vs 6.7 s / 33–43 s serial).
exp_one_thread() {
  export WORKBENCH_BLAS_THREADS="${WORKBENCH_BLAS_THREADS-1}" WORKBENCH_SERIAL="${WORKBENCH_SERIAL-1}"
  [ -n "$WORKBENCH_BLAS_THREADS" ] || unset WORKBENCH_BLAS_THREADS
  [ -n "$WORKBENCH_SERIAL" ] || unset WORKBENCH_SERIAL
}

# msem_csv FILE COLUMN DECIMALS: mean ± SEM (sample sd / √n) of a CSV column over the rows after the header, skipping
# empty cells; "–" with no values, "(n = 1)" with one.
msem_csv() {
  awk -F, -v c="$2" -v d="$3" 'NR > 1 && $c != "" { x[n++] = $c; s += $c }
    END { if (n == 0) { print "–"; exit } m = s / n; v = 0; for (i = 0; i < n; i++) v += (x[i] - m) ^ 2
          if (n > 1) printf "%." d "f ± %." d "f", m, sqrt(v / (n - 1) / n); else printf "%." d "f (n = 1)", m }' "$1"
}

# msem_lines: the same for one number per line on stdin, three decimals; "–" (no newline) with no values.
msem_lines() {
  awk '{ x[n++] = $1; s += $1 } END { if (n == 0) { printf "–"; exit } m = s / n; v = 0; for (i = 0; i < n; i++) v += (x[i] - m) ^ 2
         if (n > 1) printf "%.3f ± %.3f", m, sqrt(v / (n - 1) / n); else printf "%.3f (n = 1)", m }'
}

# top_recurring DIR TOP: the heads or neurons among the TOP best-scored kept units of every seed's circuit
# (DIR/seed-S/circuit.json for S < $SEEDS lists kept units best first), in seed 0's order.
top_recurring() {
  local dir="$1" top="$2" s
  for ((s = 0; s < SEEDS; s++)); do
    grep -o '"name" : "[am][0-9]*\.[hn][0-9]*"' "$dir/seed-$s/circuit.json" | head -n "$top" | sed 's/.*: "//; s/"$//' | sed "s/^/$s /"
  done | awk -v n="$SEEDS" '{ c[$2]++; if ($1 == 0) order[k++] = $2 }
    END { for (i = 0; i < k; i++) if (c[order[i]] == n) { printf "%s%s", sep, order[i]; sep = " " } }'
}

# jaccard FILE: the mean of the pairwise Jaccard indices `circuit-compare` printed ("  [i] vs [j]: x"), two decimals.
jaccard() {
  awk '/^  \[[0-9]+\] vs \[[0-9]+\]: / { x = $4; sub(/[^0-9.]/, "", x); s += x; n++ }
    END { if (n == 0) print "–"; else printf "%.2f", s / n }' "$1"
}

# method_args METHOD: sets the array `args` to `circuit`'s flags for a method name of the reports: lrp-apt (LRP, |R|
# summed per token), lrp-signed (the published signed relevance), gradient (gradient × input, signed), random (seeded
# by `circuit --seeds`: seed i for reference set i), or any other `--method` as it is (magnitude, activation).
method_args() {
  case "$1" in
    lrp-apt) args=(--method lrp --aggregation abs-per-token) ;;
    lrp-signed) args=(--method lrp --aggregation signed) ;;
    gradient) args=(--method gradient --aggregation signed) ;;
    random) args=(--method random --seed 0) ;;
    *) args=(--method "$1") ;;
  esac
}
