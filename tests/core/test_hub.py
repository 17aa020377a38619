"""The hub seen from an offline machine (hub.py): a resource neither cached nor downloadable stops in a second
with one paragraph; a cached one is read with the hub libraries switched to the cache, os.environ untouched."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aligninstruct_cli import hub
from aligninstruct_cli.errors import AitError

AIT = str(Path(sys.executable).with_name("ait"))
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: refused at once, as a blocked hub would be


def offline_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An empty HF cache and a hub that refuses connections (whatever network the machine has)."""
    env = {k: v for k, v in os.environ.items()
           if k not in hub.OFFLINE_ENV and k.lower() not in ("https_proxy", "http_proxy", "all_proxy")}
    env.update(HF_HOME=str(tmp_path / "hf-empty"), HF_ENDPOINT=UNREACHABLE, SACREBLEU=str(tmp_path / "sb"),
               PYTHONWARNINGS="ignore", **extra)
    return env



@pytest.fixture
def unreachable_hub(tmp_path, monkeypatch):
    for name, value in offline_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    for name in list(hub.OFFLINE_ENV) + ["HTTPS_PROXY", "https_proxy", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"]:
        monkeypatch.delenv(name, raising=False)
    hub.unreachable_reason.cache_clear()
    yield tmp_path / "hf-empty" / "hub"
    hub.unreachable_reason.cache_clear()



def test_score_comet_with_the_hub_unreachable_and_an_empty_cache_fails_in_under_2_s(flores_kk, tmp_path):
    args = [AIT, "score", str(flores_kk["hyp"]), "--refs", str(flores_kk["ref"]), "--src", str(flores_kk["src"]),
            "--src-lang", "en", "--tgt-lang", "kk", "--metrics", "comet"]
    for env in (offline_env(tmp_path), offline_env(tmp_path, HF_HUB_OFFLINE="1")):
        started = time.monotonic()
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        seconds = time.monotonic() - started
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        message = " ".join(proc.stderr.split())
        assert "'Unbabel/wmt22-comet-da' is not in the local Hugging Face cache" in message
        assert str(tmp_path / "hf-empty" / "hub") in message
        assert "HF_HUB_OFFLINE=1" in message and "--comet-model" in message and "--metrics bleu,chrf" in message
        assert ("HF_HUB_OFFLINE is set" if "HF_HUB_OFFLINE" in env else "the hub is unreachable") in message
        assert seconds < 2.0 or seconds < 4.0 and os.cpu_count() and os.getloadavg()[0] > os.cpu_count(), seconds


def test_hub_checks_fail_fast_or_read_the_cache_offline(unreachable_hub, monkeypatch):
    from aligninstruct_cli.metrics.comet import resolve_checkpoint
    from aligninstruct_cli.models import resolve_model

    started = time.monotonic()
    with pytest.raises(hub.OfflineError, match="model 'org/tiny' is not in the local Hugging Face cache"):
        resolve_model("org/tiny")
    with pytest.raises(hub.OfflineError, match="COMET model 'Unbabel/wmt22-comet-da'"):
        resolve_checkpoint("Unbabel/wmt22-comet-da")
    assert time.monotonic() - started < 2.0
    # cached: found without the network, and the hub libraries are switched to the cache only
    snapshot = unreachable_hub / "models--org--tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}", encoding="utf-8")
    (unreachable_hub / "models--org--tiny" / "refs").mkdir()
    (unreachable_hub / "models--org--tiny" / "refs" / "main").write_text("abc123", encoding="utf-8")
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "_switched_offline", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    assert hub.child_environment() == {}
    assert hub.require("org/tiny", what="model", fix="x", files=("config.json",)) == snapshot
    # switched in this process's hub library and handed to the processes it starts, os.environ untouched
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True and "HF_HUB_OFFLINE" not in os.environ
    assert hub.switched_offline() and hub.child_environment() == {"HF_HUB_OFFLINE": "1"}
    comet = unreachable_hub / "models--org--comet" / "snapshots" / "s1"
    (comet / "checkpoints").mkdir(parents=True)
    (comet / "checkpoints" / "model.ckpt").write_bytes(b"x")
    (comet / "hparams.yaml").write_text("pretrained_model: org/encoder\n", encoding="utf-8")
    with pytest.raises(hub.OfflineError, match="the encoder of COMET model 'org/comet'"):
        resolve_checkpoint("org/comet")  # its encoder is not cached: said now, not deep inside comet


def test_the_offline_switch_reaches_libraries_imported_after_it_without_os_environ():
    """go_offline before transformers/datasets are imported: they take the switch from huggingface_hub at their
    import, and the process's environment is left as it was."""
    env = {k: v for k, v in os.environ.items() if k not in hub.OFFLINE_ENV}
    script = ("import os\nfrom aligninstruct_cli import hub\nhub.go_offline()\n"
              "import transformers.utils.hub, datasets.config, huggingface_hub.constants\n"
              "print(transformers.utils.hub.is_offline_mode(), datasets.config.HF_HUB_OFFLINE,\n"
              "      huggingface_hub.constants.HF_HUB_OFFLINE, 'HF_HUB_OFFLINE' in os.environ)\n")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "True", "False"]


def test_data_and_spm_models_fail_fast_offline(tmp_path, unreachable_hub):
    started = time.monotonic()
    proc = subprocess.run([AIT, "data", "opus100", "--pair", "en-kk", "--split", "test", "--limit", "2"],
                          env=offline_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 10  # was 24 s of retries
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    message = " ".join(proc.stderr.split())
    assert "dataset 'Helsinki-NLP/opus-100' is not in the local Hugging Face cache" in message
    assert "--source DIR" in message and "HF_HUB_OFFLINE=1" in message

    from aligninstruct_cli.metrics import bleu_chrf

    os.environ["HTTPS_PROXY"] = UNREACHABLE  # whatever the network: the download site cannot be reached
    try:
        hub.unreachable_reason.cache_clear()
        started = time.monotonic()
        with pytest.raises(AitError, match="could not be downloaded .*cannot connect to proxy 127.0.0.1"):
            bleu_chrf.check_spm_model("flores200")
        assert time.monotonic() - started < 2.0
    finally:
        del os.environ["HTTPS_PROXY"]
