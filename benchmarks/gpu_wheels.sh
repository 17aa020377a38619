#!/usr/bin/env bash
# The wheels gpu_check.sh installs on a lent GPU (whose image has torch, transformers 5 and no network):
# deepspeed and orjson for the training steps; transformers 4.57 + unbabel-comet and their small dependencies
# for the comet step's side environment (comet needs transformers<5). About 22 MB: carry the folder with the
# run (`carry: ["gpu-wheels"]`, a git-ignored path). Binary wheels for CPython 3.10-3.12.
#
#   bash benchmarks/gpu_wheels.sh [DIR]      # default gpu-wheels/
set -eu
DIR=${1:-gpu-wheels}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$DIR"
# pure-Python wheels and sdists: the pins of constraints.txt where it has them, else what .venv runs
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
"$PY" -m pip download -q --no-deps -d "$DIR" "deepspeed==$(version deepspeed)" "transformers==4.57.6" \
    "huggingface-hub==0.36.2" "unbabel-comet==$(version unbabel-comet)" \
    "pytorch-lightning==$(version pytorch-lightning)" "lightning-utilities==$(version lightning-utilities)" \
    "torchmetrics==$(version torchmetrics)" "entmax==$(version entmax)" "jsonargparse==$(version jsonargparse)"
for py in 3.10 3.11 3.12; do  # compiled ones, per interpreter the image may have
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --platform manylinux2014_x86_64 \
        --platform manylinux_2_28_x86_64 -d "$DIR" "orjson==3.13.0" "tokenizers==0.22.2"
done
du -sh "$DIR"
ls "$DIR"
