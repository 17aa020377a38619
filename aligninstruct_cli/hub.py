"""The Hugging Face hub seen from an offline machine: is a repository in the local cache, can the hub be
reached, and one clear paragraph when neither holds.

Loading a hub id that is not cached on a machine without network makes transformers, datasets and comet
retry for tens of seconds and then fail with messages about something else ("not supported by COMET").
Every loader of a hub id (models.py, metrics/comet.py, data_sources.py, sacrebleu's SentencePiece models in
metrics/bleu_chrf.py) asks `require` first: a cached repository goes ahead (and, when the hub cannot be
reached, the process switches the hub libraries to offline mode so they read the cache without retries);
a repository that is neither cached nor downloadable stops in well under two seconds with exit code 2.

Reachability is one DNS lookup and one TCP connection to the hub's host (or the HTTPS proxy), each with
`REACH_TIMEOUT_S`, checked once per process."""

from __future__ import annotations

import os
import socket
import sys
import threading
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from aligninstruct_cli.options import OptionError

OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUE = ("1", "true", "yes", "on")
REACH_TIMEOUT_S = 0.8
DEFAULT_ENDPOINT = "https://huggingface.co"


class OfflineError(OptionError):
    """A hub resource that is neither in the local cache nor downloadable now (an option error: its fix names
    the option that takes a local path instead)."""


_switched_offline = False  # go_offline set HF_HUB_OFFLINE in this process (the user did not)


def offline_requested() -> bool:
    """The user said offline: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE, HF_DATASETS_OFFLINE) is set."""
    return not _switched_offline and any(os.environ.get(var, "").strip().lower() in _TRUE for var in OFFLINE_ENV)


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "").strip() or DEFAULT_ENDPOINT


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloaded repositories (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _resolves(host: str, port: int, timeout: float) -> list | None:
    """getaddrinfo with a timeout (it has none of its own): a daemon thread we stop waiting for."""
    result: list = []

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            result.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        return None
    return None if isinstance(result[0], OSError) else result[0]


@lru_cache(maxsize=None)
def unreachable_reason(url: str | None = None, timeout: float = REACH_TIMEOUT_S) -> str | None:
    """None when a TCP connection to the hub (or the HTTPS proxy in the environment) opens within `timeout`;
    else why not, in a few words."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    target = urlparse(proxy if proxy else (url or endpoint()))
    host = target.hostname
    if not host:
        return None  # nothing we can check: let the library try
    port = target.port or (443 if target.scheme == "https" else 80)
    what = f"proxy {host}" if proxy else host
    infos = _resolves(host, port, timeout)
    if not infos:
        return f"cannot resolve {what}"
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
    except OSError as exc:
        return f"cannot connect to {what} ({exc.strerror or type(exc).__name__})"
    return None


def go_offline() -> None:
    """Make huggingface_hub, transformers and datasets read the cache only in this process, without touching
    os.environ: all three take their offline switch from `huggingface_hub.constants.HF_HUB_OFFLINE` when they are
    imported, so that constant is set (and the copies of the libraries already imported). A process this one
    starts gets the switch in its own environment (`child_environment`)."""
    global _switched_offline
    if not offline_requested():
        _switched_offline = True
    try:
        import huggingface_hub.constants  # lazy: huggingface_hub (its package is large; this module is small)
    except ImportError:  # no hub library installed: nothing could download anyway
        return
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    if "transformers" in sys.modules:
        import transformers.utils.hub  # lazy: transformers (switched only when already imported)

        transformers.utils.hub._is_offline_mode = True  # transformers 4.x's copy, taken at its import
    if "datasets" in sys.modules:
        import datasets.config  # lazy: datasets (switched only when already imported)

        datasets.config.HF_HUB_OFFLINE = True
        datasets.config.HF_DATASETS_OFFLINE = True


def switched_offline() -> bool:
    """Whether `go_offline` switched this process to the cache (the user had not)."""
    return _switched_offline


def child_environment() -> dict[str, str]:
    """The environment entries that carry this process's offline switch to a process it starts: {HF_HUB_OFFLINE:
    1} after `go_offline`, else nothing (a user's own HF_HUB_OFFLINE is inherited with the rest)."""
    return {"HF_HUB_OFFLINE": "1"} if _switched_offline else {}


def cached_snapshot(repo_id: str, *, repo_type: str = "model", files: tuple[str, ...] = ()) -> Path | None:
    """The newest cached snapshot directory of `repo_id` holding every one of `files` (any snapshot when
    none are named), or None. Reads the cache layout only: no network, no import of huggingface_hub."""
    folder = hub_cache_dir() / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = folder / "refs" / "main"
    preferred = ref.read_text(encoding="utf-8").strip() if ref.is_file() else None
    candidates = sorted(snapshots.iterdir(), key=lambda p: (p.name != preferred, -p.stat().st_mtime))
    for snapshot in candidates:
        if snapshot.is_dir() and all((snapshot / f).exists() for f in files) and any(snapshot.iterdir()):
            return snapshot
    return None


def offline_paragraph(what: str, repo_id: str, reason: str, fix: str, *, repo_type: str = "model") -> str:
    cache = hub_cache_dir()
    return (f"{what} {repo_id!r} is not in the local Hugging Face cache ({cache}) and cannot be downloaded: "
            f"{reason}. Download it once with network access (e.g. `huggingface-cli download "
            f"{'--repo-type dataset ' if repo_type == 'dataset' else ''}{repo_id}`; HF_HOME or HF_HUB_CACHE "
            f"say where the cache is), then set HF_HUB_OFFLINE=1 to work from the cache; or {fix}.")


def download_blocker() -> str | None:
    """Why nothing can be downloaded from the hub now (HF_HUB_OFFLINE, or the hub unreachable); None: it can."""
    if offline_requested():
        return "HF_HUB_OFFLINE is set"
    reason = unreachable_reason()
    return f"the hub is unreachable ({reason})" if reason is not None else None


def availability(repo_id: str, *, what: str, fix: str, repo_type: str = "model",
                 files: tuple[str, ...] = ()) -> tuple[Path | None, str | None]:
    """(its cached snapshot, None); (None, None) when it is not cached but can be downloaded; or (None, the
    paragraph `require` raises: `what` `repo_id`, the cache and the fixes) when it can be had neither way."""
    snapshot = cached_snapshot(repo_id, repo_type=repo_type, files=files)
    if snapshot is not None:
        return snapshot, None
    blocker = download_blocker()
    return None, (offline_paragraph(what, repo_id, blocker, fix, repo_type=repo_type) if blocker else None)


def require(repo_id: str, *, what: str, fix: str, repo_type: str = "model", files: tuple[str, ...] = ()) -> Path | None:
    """Check a hub resource before a library loads it: its cached snapshot (None when it is not cached but the
    hub can be reached: the library downloads it). Raises `OfflineError` (exit 2, one paragraph naming
    `what` `repo_id`, the cache and the fixes: HF_HUB_OFFLINE=1, `fix`) when it is neither cached nor
    downloadable. When the hub cannot be reached, the hub libraries are switched to the cache only."""
    snapshot, problem = availability(repo_id, what=what, fix=fix, repo_type=repo_type, files=files)
    if problem is not None:
        raise OfflineError(problem)
    if snapshot is not None and not offline_requested() and unreachable_reason() is not None:
        go_offline()  # cached: read it without minutes of retries
    return snapshot
