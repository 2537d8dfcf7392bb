#!/usr/bin/env bash
# Recreate the Python reference environment used by tools/*.py (golden-number
# generators). Idempotent: re-running on a working venv only re-checks it.
#
#   tools/setup_pyenv.sh [VENV_PATH]      # default: .venv
#
# Pins (see /work/shared/notes/toolchain.md §7):
#   * torch==2.13.0+cpu   -- the CPU wheel from the local find-links folder
#                            (PIP_FIND_LINKS); plain `torch` would pull 2.15 + ~3 GB CUDA.
#   * transformers<5      -- lxt 2.1 fails to import with transformers 5.x.
#   * lxt==2.1, --no-deps -- its deps (open_clip_torch -> torchvision, accelerate, ...)
#                            would replace the CPU torch with a CUDA build.
# lxt.efficient imports torchvision at import time; the scripts stub it in
# sys.modules AFTER importing transformers (see tools/lxt_goldens.py).
set -euo pipefail

VENV="${1:-.venv}"
PY="${PYTHON:-python3}"

check() {
  "$VENV/bin/python" - <<'EOF'
import sys, types
import torch, transformers, safetensors, sentencepiece, numpy
# torchvision stub, must come after `import transformers`
tv = types.ModuleType("torchvision"); tvm = types.ModuleType("torchvision.models")
vit = types.ModuleType("torchvision.models.vision_transformer"); vit.nn = torch.nn
tv.models = tvm; tvm.vision_transformer = vit
sys.modules.update({"torchvision": tv, "torchvision.models": tvm,
                    "torchvision.models.vision_transformer": vit})
import warnings; warnings.filterwarnings("ignore")
import lxt.efficient  # noqa: F401
import importlib.metadata as md
assert torch.__version__ == "2.13.0+cpu", torch.__version__
assert int(transformers.__version__.split(".")[0]) < 5, transformers.__version__
print("ok: torch", torch.__version__, "transformers", transformers.__version__,
      "lxt", md.version("lxt"), "safetensors", md.version("safetensors"),
      "numpy", numpy.__version__)
EOF
}

if [ -x "$VENV/bin/python" ] && check 2>/dev/null; then
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet torch==2.13.0+cpu 'transformers<5' safetensors sentencepiece numpy
"$VENV/bin/pip" install --quiet --no-deps lxt==2.1
check
