# ait on a CUDA machine. Build:  docker build -t ait .
# Run:   docker run --gpus all --rm -v "$PWD:/work" -w /work -v ~/.cache/huggingface:/root/.cache/huggingface ait --help
# The devel image carries nvcc, which DeepSpeed needs to JIT-build its fused CUDA ops.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    TOKENIZERS_PARALLELISM=false

WORKDIR /opt/ait
COPY pyproject.toml README.md constraints.txt ./
COPY aligninstruct_cli ./aligninstruct_cli
# Keep the image's CUDA torch: constrain torch to the installed version, take the rest from the
# package's own (loose) requirements plus the GPU extras (deepspeed, plotting, datasets; COMET is ait's own).
RUN python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > /tmp/torch-pin.txt \
 && pip install -c /tmp/torch-pin.txt ".[gpu]"

WORKDIR /work
ENTRYPOINT ["ait"]
CMD ["--help"]
