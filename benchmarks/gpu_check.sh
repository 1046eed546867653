#!/usr/bin/env bash
# The prepared device check (issue 15): run it on a GPU machine from the repository root.
#
#     bash benchmarks/gpu_check.sh            # on the GPU (8-minute hard limit), writes
#                                             # benchmarks/results/gpu_check_cuda.{md,json}
#     bash benchmarks/gpu_check.sh --device cpu --tiny   # the same script, tiny, on a CPU
#
# Any other arguments go to benchmarks/gpu_check.py (see its --help). Python: $PYTHON, else
# .venv/bin/python, else python3; genlab is imported from src/ when it is not installed, so a
# machine with torch + lightning + the project's dependencies needs no install (and no network).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import genlab" 2>/dev/null; then
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c "import torch; print('torch', torch.__version__, '| cuda available:', torch.cuda.is_available(), '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
LIMIT="${GPU_CHECK_LIMIT_S:-480}"   # 8 minutes: the python script stops starting rows at 420 s
# --foreground: Ctrl-C reaches the script; SIGTERM after the limit, SIGKILL 20 s later
exec timeout --foreground -k 20 "$LIMIT" "$PY" benchmarks/gpu_check.py "$@"
