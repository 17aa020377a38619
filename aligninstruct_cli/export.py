"""Out of ait, into serving: `ait export` and the model card of every adapter ait writes.

`export(options, source)` takes a training run directory (its `final/`) or an adapter directory and writes
either the merged model (base weights + LoRA, `merge_and_unload`, safetensors shards, tokenizer, generation
config: what `AutoModelForCausalLM.from_pretrained(DIR)`, vLLM or TGI load) or, with `adapter_only`, a clean
adapter directory (adapter weights and config with the base named portably, tokenizer, card). Both get a
model card and `export.json` (what was exported from what, with which versions). The directory is built
beside the output and renamed into place, so a failed export leaves nothing half-written.

The model card (README.md, with the hub's YAML metadata) names the base model by its hub id when it came
from the hub (a hub id, a hub cache snapshot, or a local copy whose config remembers the id), else by its
directory's name: never by an absolute local path. It states the languages, the objectives and curriculum,
the data sizes, the training settings and, given an `ait score -f json` report, the scores.
`write_run_cards(OUTPUT)` puts such a card in every adapter directory of a finished `ait train` run (in place
of PEFT's placeholder card, which names the base by its absolute path)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from aligninstruct_cli import console, models
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.instructions.templates import MT_INPUT
from aligninstruct_cli.io import atomic_path, output_error, read_records, umask_permissions, write_json
from aligninstruct_cli.languages import find_language, language_name
from aligninstruct_cli.models import (HF_CACHE_DIR, LICENSE_ID, PRECISIONS, adapter_base_model, check_adapter_files,
                                      check_model_files, license_option, load_model_config, looks_like_path,
                                      precision_field)
from aligninstruct_cli.options import OptionError, check_options, option, option_ref
from aligninstruct_cli.provenance import package_versions
from aligninstruct_cli.records import record_converter

CARD = "README.md"
SUMMARY = "data_summary.json"  # in a run directory: the languages, objectives and sizes of its data
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json")
PAPER = "Mao & Yu (2024), *Tuning LLMs with Contrastive Alignment Instructions for Machine Translation in Unseen, " \
        "Low-resource Languages* (AlignInstruct)"
_OBJECTIVE_NAMES = {"mt": "MTInstruct (translation)", "align": "AlignInstruct (word-alignment judgements)",
                    "hint": "HintInstruct (alignment hints)", "revise": "ReviseInstruct (correct a wrong word)",
                    "mono-half": "MonoInstruct (complete a half sentence)",
                    "mono-full": "MonoInstruct (generate a sentence)",
                    "general": "general instructions (alpaca / chat data)"}


# ---------------------------------------------------------------------------------------------- options
@dataclass(kw_only=True)
class ExportOptions:
    """The options of `ait export`."""

    output: str = option(flags=("--output", "-o"), metavar="DIR",
                         help="Directory to write (new, or empty): the merged model, or with --adapter-only the "
                              "adapter.", details="Built beside it and renamed into place: a failed export leaves "
                                                  "nothing behind.")
    model: Optional[str] = option(None, flags=("--model", "-m"), default_doc="the run's base model",
                                  help="Base model (hub id or local directory) the adapter was trained on.",
                                  details="Default: the model of the run (run.json), else the one the adapter's "
                                          "config names. It must be the adapter's base.")
    adapter_only: bool = option(False, help="Write a clean adapter directory (adapter weights and config, tokenizer, "
                                            "model card) instead of a merged model.",
                                details="The config names the base by its hub id (or its directory's name), not by "
                                        "a local path; no training state is copied.")
    scores: Optional[str] = option(None, metavar="FILE", help="An `ait score -f json` report whose scores the model "
                                   "card states.")
    precision: Literal[PRECISIONS] = precision_field(  # type: ignore[valid-type]
        "auto", panel=None, aliases=(), help="Precision of the merged weights: auto (the base model's own, from its "
        "config; fp32 when it names none), bf16, fp16 or fp32.",
    )
    device: str = option("cpu", help="Where to merge: cpu, cuda or cuda:N (a GPU is faster for large models; the "
                         "weights written are the same).")
    max_shard_size: str = option("5GB", help="Largest safetensors shard of the merged model (transformers' "
                                 "max_shard_size, e.g. 2GB).")
    license: Optional[str] = option(None, default_doc="the base model's", parse=license_option,
                                    help="The model card's license (a hub license id, e.g. apache-2.0).",
                                    details="Default: the `license:` of the base model's card, when its card is "
                                            "at hand (a local directory, or the hub cache); else none is stated.")

    def __post_init__(self) -> None:
        check_options(self)


# ---------------------------------------------------------------------------------------------- names
def hub_id_of(model: str | None) -> str | None:
    """The hub id a model reference stands for: a hub id itself, a hub-cache snapshot
    (`.../models--org--name/snapshots/<hash>`), or a local copy whose config.json still carries the id it
    was loaded from (`_name_or_path`, as `save_pretrained` writes it); None for a model known only locally."""
    if not model:
        return None
    cached = HF_CACHE_DIR.search(model.rstrip("/") + "/")
    if cached:
        return f"{cached.group(1)}/{cached.group(2)}"
    path = Path(model).expanduser()
    if not path.exists():
        return None if looks_like_path(model) else model
    config = path / "config.json"
    try:
        remembered = json.loads(config.read_text(encoding="utf-8")).get("_name_or_path") if config.is_file() else None
    except (OSError, ValueError):
        remembered = None
    if isinstance(remembered, str) and remembered and not looks_like_path(remembered) \
            and not Path(remembered).expanduser().exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", remembered):
        return remembered
    return None


def portable_name(model: str | None) -> str:
    """The hub id of `model`, else its directory's name: a name that holds on another machine."""
    if not model:
        return "unknown"
    return hub_id_of(model) or Path(model.rstrip("/")).name


def _no_local_paths(text: str, *paths: str | None) -> str:
    """`text` with any of `paths` (and their resolved forms) replaced by their last component."""
    for p in paths:
        if not p:
            continue
        for form in {p, str(Path(p).expanduser().resolve())}:
            if os.path.isabs(form) and len(form) > 1:
                text = text.replace(form, Path(form).name)
    return text


# ---------------------------------------------------------------------------------------------- what was run
def find_run(directory: str | os.PathLike[str]) -> Path | None:
    """The `ait train` run directory holding (or being) `directory`: the nearest one up with run.json."""
    d = Path(directory).resolve()
    for candidate in (d, d.parent, d.parent.parent):
        if (candidate / "run.json").is_file():
            return candidate
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AitError(f"{path}: unreadable JSON ({exc})") from None


def data_summary(manifest: dict) -> dict[str, dict[str, Any]]:
    """Per data name of a run: records, objectives, directions and languages, read from the instruction files
    run.json lists (skipped when a file is gone), with the tokenized sizes of run.json's data_stats."""

    out: dict[str, dict[str, Any]] = {}
    stats = manifest.get("data_stats") or {}
    data_format = (manifest.get("hyperparameters") or {}).get("data_format") or "auto"
    for name, entry in (manifest.get("input_hashes") or {}).items():
        path = entry.get("path") if isinstance(entry, dict) else None
        if name == "model_config" or not path:
            continue
        item: dict[str, Any] = {"examples": (stats.get(name) or {}).get("examples"),
                                "tokens": (stats.get(name) or {}).get("tokens")}
        if Path(path).is_file():
            objectives: Counter = Counter()
            directions: Counter = Counter()
            languages: set[str] = set()
            try:
                for rec in read_records(path, kind="any", convert=record_converter(data_format)):
                    if isinstance(rec, dict):
                        objectives[str(rec.get("objective", "?"))] += 1
                        if "src_lang" in rec or "tgt_lang" in rec:  # general instructions may have none
                            src, tgt = str(rec.get("src_lang", "?")), str(rec.get("tgt_lang", "?"))
                            directions[f"{src}-{tgt}"] += 1
                            languages.update((src, tgt))
            except AitError:
                pass  # a file changed since training: the card says less, the run is not affected
            item.update(records=sum(objectives.values()), objectives=dict(objectives.most_common()),
                        directions=dict(directions.most_common()), languages=sorted(languages - {"?"}))
        out[name] = item
    return out


def run_facts(run_dir: Path | None) -> dict[str, Any]:
    """What a card says about a run: run.json and the data summary (data_summary.json, else read now)."""
    if run_dir is None:
        return {}
    manifest = _read_json(run_dir / "run.json")
    summary_file = run_dir / SUMMARY
    summary = _read_json(summary_file) if summary_file.is_file() else data_summary(manifest)
    return {"manifest": manifest, "summary": summary}


# ---------------------------------------------------------------------------------------------- the card
def _language_names(codes: list[str]) -> list[str]:
    names = []
    for code in codes:
        lang = find_language(code)
        names.append(f"{lang.name} ({code})" if lang else code)
    return names


def _scores_section(report: dict) -> list[str]:
    metrics = report.get("metrics") or []
    lines = ["## Scores", "", f"From `ait score` on {report.get('n_segments', '?')} segments "
             f"(references: {Path(str(report.get('references', '?'))).name}).", ""]
    lines.append("| system | direction | " + " | ".join(metrics) + " |")
    lines.append("|---|---|" + "---|" * len(metrics))
    signatures: dict[str, set] = {}
    for system in report.get("systems", []):
        for key, scores in system.get("directions", {}).items():
            cells = []
            for m in metrics:
                value = scores.get(m, {})
                cells.append(f"{value['score']:.2f}" if isinstance(value.get("score"), (int, float)) else "–")
                if value.get("signature"):
                    signatures.setdefault(m, set()).add(value["signature"])
            lines.append(f"| {system.get('name', '?')} | {key} | " + " | ".join(cells) + " |")
    if signatures:
        lines += ["", "Signatures:", ""]
        lines += [f"- {m}: `{sig}`" for m, sigs in signatures.items() for sig in sorted(sigs)]
    return lines + [""]


# the instruction types of the objectives, as a card's title names them: the paper's names, without the gloss
_METHOD_NAMES = {objective: name.split(" (")[0] for objective, name in _OBJECTIVE_NAMES.items()}
_ORIGIN_DEPTH = 8  # ait train runs followed back through their bases at most


def card_base(base: str | None) -> tuple[str | None, str, str | None, str]:
    """(hub id, name, origin, load name) of a card's base. A base that is itself an `ait train` output (a
    run's final/ or stage directory: a `--full` run's model) is followed back through the runs' bases to the
    model they started from, its `origin`, which names it (by hub id when it came from the hub); the name
    says which runs trained on top of it. The load name is what loads the base itself: its hub id, else its
    directory's name, or for an ait train output RUN/final (never an absolute path)."""
    origin, runs = base, []
    load_name = portable_name(base)
    while origin and len(runs) < _ORIGIN_DEPTH and Path(origin).expanduser().is_dir():
        run_dir = find_run(Path(origin).expanduser())
        if run_dir is None:
            break
        try:
            earlier = (json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("model") or {}).get("name")
        except (OSError, ValueError):
            break
        if not isinstance(earlier, str) or not earlier:
            break
        if not runs:
            load_name = f"{run_dir.name}/{Path(origin).expanduser().resolve().relative_to(run_dir.resolve())}" \
                if Path(origin).expanduser().resolve() != run_dir.resolve() else run_dir.name
        runs.append(run_dir.name)
        origin = earlier
    name = portable_name(origin)
    if runs:
        name += " (further trained by ait: " + " → ".join(reversed(runs)) + ")"
    return hub_id_of(origin), name, origin, load_name


def base_license(model: str | None) -> str | None:
    """The `license:` of a model's card (README.md front matter): of a local directory, else of the hub
    cache's copy of its card; None when neither is at hand (nothing is downloaded)."""
    if not model:
        return None
    card = Path(model).expanduser() / CARD
    if not card.is_file():
        hub_id = hub_id_of(model)
        if not hub_id:
            return None
        try:
            from huggingface_hub import try_to_load_from_cache  # lazy: huggingface_hub

            cached = try_to_load_from_cache(hub_id, CARD)
        except Exception:  # an id the hub library refuses, an unreadable cache: no license known
            return None
        if not isinstance(cached, str):
            return None
        card = Path(cached)
    try:
        text = card.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    match = re.match(r"---\n(.*?)\n---", text, re.S)
    if not match:
        return None
    import yaml  # lazy: yaml

    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    value = meta.get("license") if isinstance(meta, dict) else None
    # only an id: another card's value must not add lines to the front matter of the cards ait writes
    return str(value) if isinstance(value, (str, int, float)) and LICENSE_ID.fullmatch(str(value)) else None


def _example_direction(summary: dict[str, Any]) -> tuple[str, str] | None:
    """The direction a card's example translates: the most frequent among the data that trains MTInstruct
    (else among all the data); None when the data names no languages."""
    directions: Counter = Counter()
    for wanted in (lambda item: "mt" in (item.get("objectives") or {}), lambda item: True):
        for name, item in summary.items():
            if not name.startswith("--") and wanted(item):
                directions.update({d: n for d, n in (item.get("directions") or {}).items() if "?" not in d})
        if directions:
            src, _, tgt = directions.most_common(1)[0][0].partition("-")
            return src, tgt
    return None


def _usage(kind: str, load_name: str, chat: bool, direction: tuple[str, str] | None) -> list[str]:
    """The card's `## Use`: the ait command, and a transformers snippet that builds the prompt, generates
    and cuts the answer as `ait translate` does (generation.clean_hypothesis). `load_name`: the base."""
    src_name, tgt_name = (language_name(code) for code in direction) if direction else ("English", "Kazakh")
    prompt = MT_INPUT.format(src_name=src_name, tgt_name=tgt_name, src="<sentence>")
    lines = ["## Use", "", "```bash"]
    if kind == "adapter":
        lines.append(f"ait translate test.jsonl --model {load_name} --adapter THIS_DIR"
                     + (" --chat-template" if chat else "") + " -o hyps.jsonl")
    else:
        lines.append("ait translate test.jsonl --model THIS_DIR" + (" --chat-template" if chat else "")
                     + " -o hyps.jsonl")
    lines += ["```", "", "```python"]
    if kind == "adapter":
        lines += ["from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f"base = AutoModelForCausalLM.from_pretrained({load_name!r})",
                  "model = PeftModel.from_pretrained(base, 'THIS_DIR')",
                  "tokenizer = AutoTokenizer.from_pretrained('THIS_DIR')"]
    else:
        lines += ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  "model = AutoModelForCausalLM.from_pretrained('THIS_DIR')",
                  "tokenizer = AutoTokenizer.from_pretrained('THIS_DIR')"]
    lines += ["", f"prompt = {prompt.replace('<sentence>', '{sentence}')!r}.format(sentence=\"...\")"]
    if chat:
        lines += ["prompt = tokenizer.apply_chat_template([{'role': 'user', 'content': prompt}], tokenize=False,",
                  "                                       add_generation_prompt=True)"]
    lines += ["inputs = tokenizer(prompt, return_tensors='pt')",
              "output = model.generate(**inputs, max_new_tokens=256, do_sample=False)",
              "text = tokenizer.decode(output[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True)",
              "translation = text.lstrip().split('\\n', 1)[0].rstrip()  # as ait translate cuts the answer",
              "```", "",
              f"The prompt is the paper's MTInstruct input (here {src_name} → {tgt_name}): "
              f"`{prompt.replace(chr(10), chr(92) + 'n')}`; the translation follows after a space, up to the first "
              "newline or EOS." + (" Chat-tuned: the prompt is the user's turn of the tokenizer's chat template."
                                   if chat else ""), ""]
    return lines


def model_card(*, base: str | None, kind: Literal["adapter", "merged"], facts: dict[str, Any] | None = None,
               scores: dict | None = None, title: str | None = None, label: str | None = None,
               license: str | None = None) -> str:
    """The README.md of an adapter or merged model: hub metadata + what it is, how it was trained, how to use
    it. `base`: the base model as given (named portably; an ait train output followed back to its base);
    `facts`: `run_facts`; `scores`: an `ait score` JSON report; `title`: the whole title, else the base and
    the instruction types trained, with `label` in brackets; `license`: else the base's."""
    facts = facts or {}
    manifest = facts.get("manifest") or {}
    summary = facts.get("summary") or {}
    hub_id, base_name, origin, load_name = card_base(base)
    license = license or (manifest.get("hyperparameters") or {}).get("license") or base_license(origin)
    languages = sorted({lang for item in summary.values()
                        for lang in item.get("languages") or [part for d in item.get("directions") or {}
                                                              for part in d.split("-")] if lang and lang != "?"})
    objectives: Counter = Counter()
    for name, item in summary.items():
        if not name.startswith("--"):  # --val: the validation file is not trained on
            objectives.update(item.get("objectives") or {})
    methods = list(dict.fromkeys(_METHOD_NAMES[o] for o in _METHOD_NAMES if o in objectives))
    if not title:
        title = f"{portable_name(origin)} + " + (" + ".join(methods) if methods else "ait LoRA") \
            + (f" ({label})" if label else "")
    what = "LoRA adapter" if kind == "adapter" else "model (LoRA adapter merged into the base weights)"
    lines = _front_matter(kind, hub_id, license, languages) + [
        "", f"# {title}", "",
        f"A {what} for machine translation, trained with ait on base model "
        f"**{base_name}**" + ("" if hub_id else " (a local model: not on the Hugging Face hub)") + ".",
        f"Method: {PAPER}.", "",
        f"License: {license} (the base model's terms apply to this derivative)." if license else
        "License: not stated here; the base model's terms apply to this derivative.", ""]
    if languages:
        lines += ["## Languages", "", ", ".join(_language_names(languages)) + ".", ""]
    if manifest:
        lines += _training_section(manifest, summary, objectives)
    if scores:
        lines += _scores_section(scores)
    chat = bool((manifest.get("hyperparameters") or {}).get("chat_template"))
    lines += _usage(kind, load_name, chat, _example_direction(summary))
    return "\n".join(lines)


def _front_matter(kind: str, hub_id: str | None, license: str | None, languages: list[str]) -> list[str]:
    """The card's YAML front matter: the hub's metadata."""
    meta = ["---"]
    if hub_id:
        meta.append(f"base_model: {hub_id}")
    if license:
        meta.append(f"license: {license}")
    meta += [f"library_name: {'peft' if kind == 'adapter' else 'transformers'}", "pipeline_tag: text-generation"]
    if languages:
        meta.append("language:")
        meta += [f"- {code}" for code in languages]
    meta += ["tags:", "- ait", "- aligninstruct", "- translation"] + (["- lora"] if kind == "adapter" else [])
    return meta + ["---"]


def _training_section(manifest: dict[str, Any], summary: dict[str, Any], objectives: Counter) -> list[str]:
    """The card's `## Training`, from the run's manifest (run.json) and data summary."""
    hyper = manifest.get("hyperparameters") or {}
    curriculum = manifest.get("curriculum") or []
    result = manifest.get("result") or {}
    lines = ["## Training", ""]
    if objectives:
        lines.append("Objectives: " + "; ".join(f"{_OBJECTIVE_NAMES.get(o, o)}: {n:,} records"
                                                for o, n in objectives.most_common()) + ".")
        lines.append("")
    if curriculum:
        epochs = hyper.get("epochs") or []
        stages = []
        for k, stage in enumerate(curriculum):
            sizes = [summary.get(name, {}).get("examples") for name in stage]
            size = f", {sum(s for s in sizes if s):,} examples" if any(sizes) else ""
            ep = f", {epochs[k]} epoch{'s' if epochs[k] != 1 else ''}" if k < len(epochs) else ""
            stages.append(f"{k + 1}. {' + '.join(stage)}{size}{ep}")
        lines += ["Curriculum (each stage starts from the previous stage's adapter):", ""] + stages + [""]
    if summary:
        lines += ["| data | examples | tokens | directions |", "|---|---|---|---|"]
        for name, item in summary.items():
            dirs = ", ".join(f"{d} ({n:,})" for d, n in (item.get("directions") or {}).items()) or "–"
            ex, tok = item.get("examples"), item.get("tokens")
            shown = "validation (--val)" if name == "--val" else name
            lines.append(f"| {shown} | {ex if ex is None else f'{ex:,}'} | {tok if tok is None else f'{tok:,}'} "
                         f"| {dirs} |")
        lines.append("")
    settings = {"learning rate": result.get("chosen_lr", (hyper.get("lr") or [None])[0]),
                "LoRA r / alpha / dropout": "/".join(str(hyper.get(k)) for k in ("lora_r", "lora_alpha",
                                                                                "lora_dropout")),
                "LoRA targets": ",".join(manifest.get("lora_targets") or []) or None,
                "max length": hyper.get("max_length"), "precision": manifest.get("precision"),
                "global batch": (manifest.get("batch") or {}).get("global"),
                "chat template": "yes (translate with --chat-template)" if hyper.get("chat_template") else None,
                "seed": hyper.get("seed")}
    lines += [f"- {k}: {v}" for k, v in settings.items() if v not in (None, "", "None/None/None")]
    versions = manifest.get("versions") or {}
    if versions:
        lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v != "not installed"))
    lines.append("")
    return lines


def write_card(directory: str | os.PathLike[str], text: str) -> None:
    """README.md in `directory`, replaced atomically (a new file: a hard-linked copy elsewhere is untouched)."""
    with atomic_path(Path(directory) / CARD) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_run_cards(output: str | os.PathLike[str]) -> list[Path]:
    """After `ait train`: data_summary.json in the run directory and a model card in every adapter directory
    of the run (stage-K-*/, final/, lr-*/stage-K-*/) in place of PEFT's. Returns the directories carded."""
    run_dir = Path(output)
    manifest = _read_json(run_dir / "run.json")
    summary = data_summary(manifest)
    write_json(run_dir / SUMMARY, summary)
    facts = {"manifest": manifest, "summary": summary}
    base = (manifest.get("model") or {}).get("name")
    done = []
    for config in sorted(run_dir.glob("**/adapter_config.json")):
        label = f"{run_dir.name}/{config.parent.relative_to(run_dir)}"
        write_card(config.parent, _no_local_paths(model_card(base=base, kind="adapter", facts=facts, label=label),
                                                  base, str(run_dir)))
        done.append(config.parent)
    return done


# ---------------------------------------------------------------------------------------------- export
@dataclass
class Source:
    adapter: Path | None  # the adapter directory (None: a full-model run's final/ model directory)
    model_dir: Path | None  # a full model directory to export as it is
    run_dir: Path | None


def resolve_source(source: str) -> Source:
    """A run directory (its final/), an adapter directory, or a full-model run's model directory."""
    path = Path(source).expanduser()
    if not path.is_dir():
        raise OptionError(f"{source}: no such directory", hint="give an `ait train` run directory or an adapter "
                          "directory (with adapter_config.json)")
    for candidate in (path, path / "final"):
        if (candidate / "adapter_config.json").is_file():
            return Source(candidate, None, find_run(candidate))
        if (candidate / "config.json").is_file() and find_run(candidate) is not None:
            return Source(None, candidate, find_run(candidate))
    if (path / "run.json").is_file():
        raise AitError(f"{source}: the run has no final/ adapter yet (unfinished?)",
                       hint="finish it with `ait train ... --resume`, or export a stage directory")
    raise AitError(f"{source}: neither an `ait train` run directory nor an adapter directory (no adapter_config.json)")


def _check_output(output: str) -> Path:
    out = Path(output).expanduser()
    if out.is_symlink():
        raise OptionError(f"{option_ref('output')} {output} is a symlink; give a new directory (ait does not write "
                          "through links)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OptionError(f"{option_ref('output')} {output} already exists and is not empty",
                          hint="choose a new directory")
    if not out.resolve().parent.is_dir():
        raise OptionError(f"{option_ref('output')} {output}: directory {out.parent} does not exist")
    return out


def _copy_tokenizer(src: Path, dst: Path) -> bool:
    copied = False
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
            copied = True
    return copied


def _base_of(source: Source, options: ExportOptions, facts: dict[str, Any]) -> str:
    if options.model:
        return options.model
    run_model = (facts.get("manifest") or {}).get("model") or {}
    for candidate in (run_model.get("name"), adapter_base_model(str(source.adapter)) if source.adapter else None):
        if candidate:
            return candidate
    raise OptionError(f"the base model is unknown: give it with {option_ref('model')}")


def export(options: ExportOptions, source: str) -> Path:
    """`ait export`: see the module docstring. Returns the output directory."""
    out = _check_output(options.output)
    src = resolve_source(source)
    if src.adapter is not None:
        check_adapter_files(src.adapter)  # a truncated adapter is an error here, not an export of it
    if src.model_dir is not None:
        check_model_files(str(src.model_dir))
    facts = run_facts(src.run_dir)
    scores = _read_json(Path(options.scores)) if options.scores else None
    if options.scores and not (isinstance(scores, dict) and "systems" in scores):
        raise OptionError(f"{option_ref('scores')} {options.scores}: not an `ait score -f json` report")
    base = _base_of(src, options, facts) if src.adapter is not None else None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.resolve().parent))
    except OSError as exc:
        raise output_error(out, exc) from None
    try:
        precision = None
        if src.adapter is not None and options.adapter_only:
            _write_adapter(src.adapter, base, tmp)
            kind = "adapter"
        else:
            precision = _write_merged(src, base, options, tmp)
            kind = "merged"
        if src.model_dir is not None:
            base = (facts.get("manifest") or {}).get("model", {}).get("name")
        card = model_card(base=base, kind=kind, facts=facts, scores=scores,  # type: ignore[arg-type]
                          label=out.name, license=options.license)
        (tmp / CARD).write_text(_no_local_paths(card, base, str(src.run_dir) if src.run_dir else None,
                                                str(src.adapter or src.model_dir)), encoding="utf-8")
        record = {"kind": kind, "base_model": portable_name(base), "base_model_hub_id": hub_id_of(base),
                  "source": Path(source).name, "precision": precision,
                  "scores": Path(options.scores).name if options.scores else None,
                  "versions": package_versions()}
        (tmp / "export.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        umask_permissions(tmp)  # the libraries' 0600 files and mkdtemp's 0700 folder: what every writer gives
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_adapter(adapter: Path, base: str | None, tmp: Path) -> None:
    """Adapter weights, the config with the base named portably, and the tokenizer; nothing else."""
    config = _read_json(adapter / "adapter_config.json")
    config["base_model_name_or_path"] = portable_name(base or config.get("base_model_name_or_path"))
    (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    weights = [name for name in ADAPTER_FILES[1:] if (adapter / name).is_file()]  # one, as export() checked
    shutil.copy2(adapter / weights[0], tmp / weights[0])
    _copy_tokenizer(adapter, tmp)


def _write_merged(src: Source, base: str | None, options: ExportOptions, tmp: Path) -> str:
    """The base model with the adapter merged in (or a full-model run's model), saved as safetensors with
    the tokenizer and a generation config whose EOS and padding match the tokenizer; returns the precision."""
    if base is not None:  # a hub id not cached and not reachable: one paragraph at once, not the hub's retries
        models.check_hub_model(base)
    precision = _merged_precision(options.precision, base or str(src.model_dir))
    if src.adapter is not None:
        loaded = models.load_model(base, str(src.adapter), merge=True, device=options.device,  # type: ignore[arg-type]
                                   precision=precision)
        model = loaded.model
        tokenizer_dir = src.adapter if (src.adapter / "tokenizer_config.json").is_file() else None
    else:
        loaded = models.load_model(str(src.model_dir), device=options.device, precision=precision)
        model, tokenizer_dir = loaded.model, src.model_dir
    model = model.to("cpu")
    if hasattr(model, "peft_config"):  # merged already; a safety net for a wrapper left behind
        model = model.merge_and_unload()
    tokenizer = models.load_tokenizer(str(tokenizer_dir) if tokenizer_dir else base)  # type: ignore[arg-type]
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        if tokenizer.eos_token_id is not None:
            generation.eos_token_id = tokenizer.eos_token_id
        generation.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.config.name_or_path = portable_name(base or str(src.model_dir))
    console.info(f"saving the merged model ({precision}) to {options.output}")
    model.save_pretrained(tmp, safe_serialization=True, max_shard_size=options.max_shard_size)
    tokenizer.save_pretrained(tmp)
    config_path = tmp / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["_name_or_path"] = portable_name(base or str(src.model_dir))
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return precision


def _merged_precision(precision: str, model: str) -> str:
    """`auto`: the precision the base model's config names (torch_dtype / dtype), else fp32."""
    if precision != "auto":
        return precision
    values = load_model_config(model).to_dict()
    dtype = str(values.get("dtype") or values.get("torch_dtype") or "float32")
    return {"torch.bfloat16": "bf16", "bfloat16": "bf16", "torch.float16": "fp16", "float16": "fp16"}.get(dtype, "fp32")
