"""A step on disk: its directory made ready to (re)start it, its outcome recorded (done.json with the
fingerprints of its outputs and inputs, or failed.json), and its state read back from them (done, stale,
failed, running, pending).

A step is done when its directory (`OUTPUT/steps/<kind>/<key>`) holds `done.json`, written once its command
exited 0 and its outputs passed the check for their kind (translate: a hypothesis for every source id; score:
as many segments as the test set; train: the final model's files whole), and when its outputs still match
what done.json records of them (each file's size and sha256, of its first and last MiB for a file over
64 MiB) and its inputs are still the outputs it was made from. Otherwise it is stale: it is redone, and
so is every step that reads it. A step without done.json is started again: from scratch (its directory
emptied first, so a half-written output never counts), except training and translation, which continue in
place (`ait train --resume` from its last checkpoint, `ait translate --resume` after the ids it has written). A running step's process
group is in its pid file (`OUTPUT/logs/*.pid`: its pid, its start time and its environment token), so that
a pid the system has given to another process since is never taken for it.

Everything a step writes (its directory, its links, the hash cache) must resolve, symlinks followed, inside
OUTPUT; a link location that holds something ait did not make is an error, never replaced.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import orjson

from aligninstruct_cli.errors import AitError
from aligninstruct_cli.experiment.graph import AIT, Graph, link_name
from aligninstruct_cli.experiment.paths import inside_output, log_path, pid_path, read_marker, write_json
from aligninstruct_cli.io import read_records
from aligninstruct_cli.models import check_adapter_files, check_safetensors
from aligninstruct_cli.provenance import file_sha256
from aligninstruct_cli.training.distributed import process_alive

DONE, FAILED, STALE, PENDING, RUNNING = "done", "failed", "stale", "pending", "running"
HASH_CACHE = ".hashes.json"
MARKERS = ("done.json", "failed.json")
NOT_OUTPUTS = ("run.lock", "checkpoints")  # in a step's directory, but not what later steps read
FULL_HASH_BELOW = 64 << 20  # larger files: size and the sha256 of their first and last BLOCK
BLOCK = 1 << 20
TOKEN_ENV = "AIT_EXPERIMENT_STEP"  # in every step's environment: marks its processes as this run's


# ---------------------------------------------------------------------------------------------- hashing
class FileHasher:
    """sha256 of your input files (a directory: of its files, by relative path), cached by size and mtime in
    OUTPUT/.hashes.json so that a rerun does not read large corpora or model weights again."""

    def __init__(self, output: str | Path):
        self.path = Path(output) / HASH_CACHE
        try:
            self.cache: dict[str, list] = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            self.cache = {}
        self.changed = False

    def file(self, path: Path) -> str:
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        entry = self.cache.get(str(path.resolve()))
        if entry and entry[:2] == stamp:
            return entry[2]
        digest = file_sha256(path)
        self.cache[str(path.resolve())] = [*stamp, digest]
        self.changed = True
        return digest

    def __call__(self, path: str) -> str:
        p = Path(path)
        if p.is_dir():
            digest = hashlib.sha256()
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                digest.update(f"{f.relative_to(p)}\0{self.file(f)}\n".encode())
            return digest.hexdigest()
        return self.file(p)

    def save(self) -> None:
        if self.changed and self.path.parent.is_dir():
            tmp = self.path.with_suffix(".tmp")
            for path in (self.path, tmp):
                inside_output(self.path.parent, path)
            tmp.write_bytes(orjson.dumps(self.cache))
            os.replace(tmp, self.path)



# ---------------------------------------------------------------------------------------------- fingerprints
def fingerprint(path: Path) -> str:
    """A file's size and content hash (of its whole content up to FULL_HASH_BELOW; beyond that of its first
    and last BLOCK: truncation and most edits show, and a status of a large study stays quick)."""
    size = path.stat().st_size
    if size <= FULL_HASH_BELOW:
        return f"{size}:sha256:{file_sha256(path)}"
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        digest.update(fh.read(BLOCK))
        fh.seek(size - BLOCK)
        digest.update(fh.read(BLOCK))
    return f"{size}:sha256-ends:{digest.hexdigest()}"


def output_files(directory: Path) -> dict[str, str]:
    """relative path -> fingerprint of every file a step made (not its markers, lock or checkpoints)."""
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(directory):
        rel_root = Path(root).relative_to(directory)
        top = rel_root == Path(".")
        if top:
            dirs[:] = [d for d in dirs if d not in NOT_OUTPUTS]
        for name in files:
            if top and (name in MARKERS or name in NOT_OUTPUTS):
                continue
            path = Path(root) / name
            if not path.is_symlink():
                out[(rel_root / name).as_posix()] = fingerprint(path)
    return dict(sorted(out.items()))


_FINGERPRINTS: dict[tuple, str] = {}  # this process's: a status or report checks each file once, not per step


def _checked_fingerprint(path: Path) -> str:
    st = path.stat()
    stamp = (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if stamp not in _FINGERPRINTS:
        _FINGERPRINTS[stamp] = fingerprint(path)
    return _FINGERPRINTS[stamp]


def outputs_digest(marker: dict[str, Any]) -> str:
    """One hash of what a done.json records of a step's outputs (its dependants record it)."""
    return hashlib.sha256(orjson.dumps(marker.get("outputs"), option=orjson.OPT_SORT_KEYS)).hexdigest()


def changed_outputs(directory: Path, recorded: dict[str, Any]) -> str | None:
    """Why the outputs in `directory` are not those done.json recorded (None: they are)."""
    for rel, recorded_print in recorded.items():
        path = directory / rel
        if not path.is_file():
            return f"{rel} is missing"
        size = path.stat().st_size
        head = str(recorded_print).split(":", 1)[0]
        if not head.isdigit() or size != int(head):
            return f"{rel} is {size:,} bytes, not the {head} it had when done"
        if _checked_fingerprint(path) != recorded_print:
            return f"{rel} was changed after it was done"
    return None


# ---------------------------------------------------------------------------------------------- output checks
def check_spec(graph: Graph, key: str) -> dict[str, Any]:
    """What `check_outputs` and done.json need to know of a step, as plain data (a Slurm job checks its own)."""
    step = graph.steps[key]
    spec: dict[str, Any] = {"kind": step.kind, "main": step.main,
                            "inputs": {k: str(graph.directory(k)) for k in step.inputs}}
    if step.kind == "translate":
        spec["source"] = graph.argv(key)[2]
    elif step.kind == "score":
        sources = [graph.argv(k)[2] for k in step.inputs if graph.steps[k].kind == "translate"]
        spec["source"] = sources[0] if sources else None
    return spec


def _ids(path: str, kind: str) -> list[bytes]:
    return [orjson.dumps(rec.get("id")) for rec in read_records(path, kind=kind)]


def check_outputs(directory: Path, spec: dict[str, Any]) -> str | None:
    """Why a step's outputs are not complete for their kind (None: they are)."""
    main = directory / spec["main"] if spec.get("main") else directory
    if not main.exists():
        return f"it wrote no {spec['main'] or 'output'}"
    kind = spec["kind"]
    try:
        if kind == "translate":
            sources, hyps = set(_ids(spec["source"], "source")), set(_ids(str(main), "hypothesis"))
            missing = sources - hyps
            if missing:
                return f"{spec['main']} has no hypothesis for {len(missing):,} of the {len(sources):,} source ids"
        elif kind == "score" and spec.get("source"):
            n_test = len(_ids(spec["source"], "source"))
            report = orjson.loads(main.read_bytes())
            n = report.get("n_segments") if isinstance(report, dict) else None
            if n != n_test:
                return f"{spec['main']} scores {n} segments, the test set has {n_test:,}"
        elif kind == "train":
            final = directory / "final"
            if (final / "adapter_config.json").exists():
                check_adapter_files(final)
            else:
                weights = sorted(final.glob("*.safetensors"))
                if not (final / "config.json").is_file() or not weights:
                    return "final/ holds neither an adapter nor a model"
                for file in weights:
                    check_safetensors(file)
    except AitError as exc:
        return str(exc)
    except (OSError, orjson.JSONDecodeError) as exc:
        return f"{spec['main']}: unreadable ({exc})"
    return None


# ---------------------------------------------------------------------------------------------- state
def step_state(graph: Graph, key: str, memo: dict[str, str | None] | None = None) -> str:
    """done (its verified output is there for these settings), failed (its last try failed), stale (its output
    is missing, changed or made from other inputs, or only an output made with other settings is there: it
    will be redone), running, pending (never made). `memo`: share it between calls on one graph."""
    return step_status(graph, key, memo)[0]


def step_status(graph: Graph, key: str, memo: dict[str, str | None] | None = None) -> tuple[str, str]:
    """(state, why) of a step; why is "" unless it is stale."""
    directory = graph.directory(key)
    memo = {} if memo is None else memo
    if (directory / "done.json").exists():
        problem = done_problem(graph, key, memo)
        return (DONE, "") if problem is None else (STALE, problem)
    if (directory / "failed.json").exists():
        return FAILED, ""
    if pid_alive(graph, key):
        return RUNNING, ""
    names = set(graph.steps[key].names)
    kind_dir = directory.parent
    if kind_dir.is_dir():
        for other in kind_dir.iterdir():
            marker = read_marker(other / "done.json") if other.name != key else None
            if isinstance(marker, dict) and names & set(marker.get("names") or []):
                return STALE, "made with other settings or inputs"
    return PENDING, ""


def done_problem(graph: Graph, key: str, memo: dict[str, str | None]) -> str | None:
    """Why a step's done.json is not to be trusted (None: it is): its outputs changed, or an input of it is not
    done or was made again since."""
    if key in memo:
        return memo[key]
    marker = read_marker(graph.directory(key) / "done.json")
    problem = None
    if not isinstance(marker, dict) or not isinstance(marker.get("outputs"), dict) or not isinstance(
            marker.get("inputs"), dict):
        problem = "its done.json is unreadable (or from an older ait)"
    elif marker.get("key") != key:
        problem = "its done.json is another step's"
    else:
        problem = changed_outputs(graph.directory(key), marker["outputs"])
        # the inputs it recorded (all of them, when a run made it; none for a done.json written by hand)
        for k in [k for k in graph.steps[key].inputs if k in marker["inputs"]] if problem is None else ():
            name = graph.steps[k].name
            if not (graph.directory(k) / "done.json").exists():
                problem = f"its input {name} is not done"
            elif done_problem(graph, k, memo) is not None:
                problem = f"its input {name} is stale"
            elif marker["inputs"].get(k) != outputs_digest(read_marker(graph.directory(k) / "done.json") or {}):
                problem = f"its input {name} was made again after it"
            if problem:
                break
    memo[key] = problem
    return problem


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat field 22); None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc").is_dir() else []:
        try:
            stat = (entry / "stat").read_bytes()
            if int(stat[stat.rindex(b")") + 2:].split()[2]) == pgid:
                members.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return members


def pid_record(pid: int, token: str) -> dict[str, Any]:
    """What a step's pid file holds: its process group, its leader's start time and its environment token."""
    return {"pgid": pid, "start": process_start(pid), "token": token}


def is_ours(record: dict[str, Any]) -> bool:
    """Whether the process group a pid file names is still the one this experiment started: its leader has the
    recorded start time, or (the leader gone) a member carries the step's token in its environment. A pid the
    system gave to another process since is never acted on."""
    pgid = record["pgid"]
    if pgid == os.getpgid(0) or not process_alive(pgid, group=True):
        return False
    start = process_start(pgid)
    if start is not None:
        return record.get("start") is not None and start == record.get("start")
    token = f"{TOKEN_ENV}={record.get('token')}".encode()
    for pid in _group_members(pgid):
        try:
            if record.get("token") and token in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return True
        except OSError:
            continue
    return False


def read_pid_file(path: Path) -> dict[str, Any] | None:
    record = read_marker(path)
    if isinstance(record, dict) and isinstance(record.get("pgid"), int) and record["pgid"] > 1:
        return record
    return None


def pid_alive(graph: Graph, key: str) -> bool:
    record = read_pid_file(pid_path(graph, key))
    return record is not None and is_ours(record)


def status_rows(graph: Graph, *, reasons: bool = False,
                memo: dict[str, str | None] | None = None) -> list[tuple[str, ...]]:
    """(names, state, output, log) per step, in the plan's order; with `reasons`, then why it is stale ("" when
    it is not). `memo`: as for `step_state`."""
    rows = []
    memo = {} if memo is None else memo
    for step in graph:
        log = log_path(graph, step.key)
        state, why = step_status(graph, step.key, memo)
        rows.append((", ".join(step.names), state, str(graph.output(step.key)), str(log) if log.exists() else "")
                    + ((why,) if reasons else ()))
    return rows


# ---------------------------------------------------------------------------------------------- a step
def command_line(graph: Graph, key: str) -> list[str]:
    """The step's argv as run: `ait` as this interpreter's module, --resume for a training to continue."""
    argv = graph.argv(key)
    if argv[0] == AIT:
        argv = [sys.executable, "-m", "aligninstruct_cli", *argv[1:]]
    step = graph.steps[key]
    if step.kind == "train" and (graph.directory(key) / "job.json").exists():
        argv.append("--resume")
    return argv


def prepare_step(graph: Graph, key: str) -> list[str]:
    """Make the step's directory ready to (re)start it; its command line."""
    step = graph.steps[key]
    directory = inside_output(graph.exp.output, graph.directory(key))
    inside_output(graph.exp.output, log_path(graph, key))
    if directory.exists():
        (directory / "failed.json").unlink(missing_ok=True)
        # a training continues from its checkpoints once its job.json is written; before that, and for the
        # steps that cannot continue, a half-made output is thrown away; so is a done output that no longer
        # matches its done.json (nothing of it is trusted)
        keep = step.resumable and (step.kind != "train" or (directory / "job.json").exists())
        if not keep or (directory / "done.json").exists():
            shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    log_path(graph, key).parent.mkdir(parents=True, exist_ok=True)
    return command_line(graph, key)


def step_env(graph: Graph, key: str) -> dict[str, str]:
    return {**os.environ, **graph.exp.env, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
            TOKEN_ENV: step_token(graph, key)}


def step_token(graph: Graph, key: str) -> str:
    """Marks a step's processes (in their environment) as this experiment's: see `is_ours`."""
    return hashlib.sha256(f"{Path(graph.exp.output).resolve()}\0{key}".encode()).hexdigest()[:24]


def finish_step(directory: Path, names: list[str], kind: str, key: str, shell: str, rc: int, seconds: float,
                log: str, spec: dict[str, Any] | None = None) -> int:
    """Record the outcome in the step's directory: done.json (exit 0 and outputs complete: `check_outputs`)
    with each output's fingerprint and those of its inputs, or failed.json. Returns the exit code, 1 for a
    command that exited 0 without a complete output. `spec` (`check_spec`): what to check; without it (a
    step marked done by hand, in tests) nothing is checked and no input recorded."""
    record: dict[str, Any] = {"names": names, "kind": kind, "key": key, "command": shell, "seconds": round(seconds, 1),
                              "log": log}
    if rc == 0:
        problem = check_outputs(directory, spec) if spec is not None else None
        spec = spec or {"inputs": {}}
        if problem is not None:
            write_json(directory / "failed.json", {**record, "exit_code": rc, "incomplete": problem})
            with open(log, "ab") as fh:
                fh.write(f"ait experiment: the step exited 0 but its output is incomplete: {problem}\n".encode())
            return 1
        inputs = {k: read_marker(Path(d) / "done.json") for k, d in spec["inputs"].items()}
        write_json(directory / "done.json", {**record, "outputs": output_files(directory),
                                              "inputs": {k: outputs_digest(m or {}) for k, m in inputs.items()}})
        return 0
    write_json(directory / "failed.json", {**record, "exit_code": rc})
    return rc


def link_names(graph: Graph, key: str) -> None:
    """OUTPUT/<kind>/<name> → the step's directory, for browsing (`demo-out/train/MTInstruct/final`). A link
    location that holds anything but a link ait made (into OUTPUT/steps/) is an error: it is not ait's to
    replace."""
    step = graph.steps[key]
    steps_root = (Path(graph.exp.output) / "steps").resolve()
    for name in step.names:
        link = Path(graph.exp.output) / step.kind / link_name(name)
        inside_output(graph.exp.output, link.parent)
        target = os.path.relpath(graph.directory(key), link.parent)
        if link.is_symlink():
            current = os.readlink(link)
            if current == target:
                continue
            if steps_root not in (link.parent / current).resolve().parents:
                raise AitError(f"{link}: a link ait did not make (to {current}) is where ait links step {name}",
                               hint="move it away; ait replaces only its own links")
        elif link.exists():
            raise AitError(f"{link}: a {'folder' if link.is_dir() else 'file'} ait did not make is where ait links "
                           f"step {name}", hint="move it away; ait replaces only its own links")
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(link.name + ".tmp-link")
        if tmp.is_symlink():
            tmp.unlink()
        elif tmp.exists():
            raise AitError(f"{tmp}: a file ait did not make is where ait makes a link", hint="move it away")
        os.symlink(target, tmp)
        os.replace(tmp, link)
