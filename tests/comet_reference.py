"""Write a toy COMET checkpoint and unbabel-comet's own `predict` scores for it, for the cross-environment test
(tests/metrics/test_comet_model.py::test_scores_equal_comets_predict_from_another_environment): `make
test-transformers5` runs this in .venv (transformers 4.x, where comet runs), then checks ait's scores under
transformers 5 against these.

    .venv/bin/python tests/comet_reference.py OUT_DIR
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from comet import load_from_checkpoint

    from aligninstruct_cli.tiny import build_tiny_comet, sample_texts

    out = Path(sys.argv[1])
    shutil.rmtree(out, ignore_errors=True)
    checkpoint = build_tiny_comet(out / "model")
    texts = sample_texts(90, seed=4)
    samples = [{"src": texts[i], "mt": texts[30 + i][: 3 + 2 * i], "ref": texts[60 + i]} for i in range(30)]
    model = load_from_checkpoint(str(checkpoint))
    scores = model.predict(samples, batch_size=4, gpus=0, progress_bar=False).scores
    (out / "reference.json").write_text(json.dumps({"checkpoint": str(checkpoint), "samples": samples,
                                                    "scores": scores}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
