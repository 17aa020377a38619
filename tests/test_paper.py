"""The paper's published scores shipped as data (aligninstruct_cli/paper/results.tsv): spot checks of cells
against the paper, the tables against each other (a transcription slip shows as a disagreement), and the
shipped file against a fresh transcription of the paper's text when the text is here."""

from __future__ import annotations

from pathlib import Path

import pytest

from aligninstruct_cli.paper import (SETTING_3, SETTING_6, paper_columns, paper_scores, paper_systems, paper_table,
                                     paper_value)
from aligninstruct_cli.paper.transcribe import render, transcribe

PAPER_TEXT = Path(__file__).resolve().parents[1] / ".." / "shared" / "paper" / "alignInstruct-paper.txt"


@pytest.mark.parametrize("table, system, testset, group, metric, narrow, value", [
    ("1", "MT+Align", "opus100", "en→xx", "BLEU", {"model": "bloomz-7b1"}, 12.28),
    ("1", "AlignInstruct", "flores200", "xx→en", "COMET", {"model": "bloomz-3b"}, 29.27),
    ("1", "MT+Align→MT", "opus100", "xx→en", "chrF++", {"model": "bloomz-1b1"}, 25.78),
    ("2", "MT+Hint", "flores200", "en→xx", "BLEU", {"model": "bloomz-3b"}, 3.11),
    ("3", "MT+Hint+Revise", "opus100", "xx→en", "BLEU", {}, 19.58),
    ("4", "MT+Mono-half+Align+Hint+Revise", "flores200", "xx→en", "COMET", {}, 55.41),
    ("5", "w/o fine-tuning", "opus100", "overall", "BLEU", {"setting": SETTING_3}, 6.89),
    ("5", "MT+Align", "opus100", "unseen→seen", "BLEU", {"setting": SETTING_3}, 8.61),
    ("5", "MTInstruct", "opus100", "unseen→en", "COMET", {"setting": SETTING_6}, 74.88),
    ("7", "MT+Align+Hint+Revise", "opus100", "unseen→en", "BLEU", {"setting": SETTING_6}, 25.27),
    ("9", "MT+Align PROMPT-4", "opus100", "xx→en", "COMET", {}, 67.06),
    ("10", "MT+Align pivot", "opus100", "seen→unseen", "chrF++", {}, 28.03),
    ("11", "w/o fine-tuning", "opus100", "gd-en", "BLEU", {}, 47.6),
    ("12", "MTInstruct", "flores200", "en-gl", "COMET", {}, 77.26),
    ("13", "MT+Align", "flores200", "yi-en", "chrF++", {}, 17.0),
    ("13", "MT+Align", "opus100", "en-yi", "BLEU", {}, 11.1),
    ("14", "w/o fine-tuning", "opus100", "ar-fr", "BLEU", {}, 21.9),
    ("16", "MT+Align", "opus100", "nl-en", "COMET", {}, 74.25),
    ("18", "MT+Align", "opus100", "ru-zh", "chrF++", {}, 24.6),
])
def test_spot_checks(table, system, testset, group, metric, narrow, value):
    assert paper_value(table, system, testset, group, metric, **narrow) == value


def test_table7_keeps_the_cell_the_text_lost():
    """de-nl-ru unseen→en of Table 7 is missing from the paper's text: left out, not derived."""
    assert paper_value("7", "MT+Align+Hint+Revise", "opus100", "unseen→en", "BLEU", setting=SETTING_3) is None
    assert paper_value("7", "MT+Align+Hint+Revise", "opus100", "seen→en", "BLEU", setting=SETTING_3) == 25.33


def test_rows_and_columns():
    assert paper_systems(1, model="bloomz-3b") == ["w/o fine-tuning", "MTInstruct", "AlignInstruct", "MT+Align",
                                                   "Align→MT", "MT+Align→MT"]
    assert paper_columns(1, model="bloomz-7b1") == [("opus100", "en→xx"), ("opus100", "xx→en"),
                                                    ("flores200", "en→xx"), ("flores200", "xx→en")]
    assert paper_systems(5, setting=SETTING_6) == ["w/o fine-tuning", "MTInstruct", "MT+Align"]
    assert len(paper_columns(5, setting=SETTING_3)) == 11
    zero_shot = [g for _, g in paper_columns(14) if "-" in g and "en" not in g.split("-")]
    assert len(zero_shot) == 30
    assert len({s.table for s in paper_scores()}) == 16


def test_the_tables_agree_with_each_other():
    """Table 1's 7b1 rows are Tables 11–13's averages; Tables 2–4 and 9 repeat Table 1's MTInstruct and
    MT+Align; Table 5 is Tables 14–18's groups; Table 10's direct rows are Table 5's ar-de-fr-nl-ru-zh rows."""
    def cells(table, system, **narrow):
        return {(s.testset, s.group, s.metric): s.value for s in paper_table(table, **narrow) if s.system == system}

    for table, system in ((11, "w/o fine-tuning"), (12, "MTInstruct"), (13, "MT+Align")):
        t1 = cells(1, system, model="bloomz-7b1")
        # to the printed precision: Table 12's average prints 18.6 for Table 1's 18.59 (the paper's own rounding)
        assert t1 and all(abs(cells(table, system)[k] - v) <= 0.01 + 1e-9 for k, v in t1.items())
    assert paper_value(12, "MTInstruct", "opus100", "xx→en", "BLEU") == 18.6
    for table in (2, 3, 4):
        mt = cells(table, "MTInstruct", model="bloomz-7b1")
        assert mt == cells(1, "MTInstruct", model="bloomz-7b1")
    for model in ("bloomz-3b", "bloomz-1b1"):
        assert cells(2, "MT+Align", model=model) == cells(1, "MT+Align", model=model)
    t9 = cells(9, "MT+Align")
    assert t9 and all(cells(1, "MT+Align", model="bloomz-7b1")[k] == v for k, v in t9.items())
    for table, setting, system in ((14, SETTING_3, "w/o fine-tuning"), (15, SETTING_3, "MTInstruct"),
                                   (16, SETTING_3, "MT+Align"), (17, SETTING_6, "MTInstruct"),
                                   (18, SETTING_6, "MT+Align")):
        t5 = cells(5, system, setting=setting)
        assert len(t5) == 33 and all(cells(table, system)[k] == v for k, v in t5.items())
    for system in ("MTInstruct", "MT+Align"):
        direct = cells(10, f"{system} direct")
        assert len(direct) == 15 and all(cells(5, system, setting=SETTING_6)[k] == v for k, v in direct.items())


def test_shipped_file_is_the_transcription_of_the_paper():
    if not PAPER_TEXT.is_file():
        pytest.skip(f"{PAPER_TEXT} not present")
    shipped = (Path(__file__).resolve().parents[1] / "aligninstruct_cli" / "paper" / "results.tsv").read_text()
    assert render(transcribe(PAPER_TEXT.read_text(encoding="utf-8"))) == shipped


# ---------------------------------------------------------------------------------------------- the paper configs
PAPER_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "examples" / "paper").glob("*.yaml"))
TESTSET_OF = {"opus100": "opus100", "flores200": "flores200"}


def _plan_directions(graph, system_names) -> set[tuple[str, str, str]]:
    """(test set, src, tgt) of every direction the systems translate, read from the plan's `ait data` steps."""
    from aligninstruct_cli.data_sources import _opus_pair
    from aligninstruct_cli.languages import get_language

    exp = graph.exp
    corpora = {c for name in system_names for c in exp.systems[name].test_sets}
    out = set()
    for step in graph:
        if step.kind != "data" or not any(step.name == f"data/{c}.{u}" for c in corpora
                                           for u in [step.name.split(".", 1)[-1]]):
            continue
        argv = step.argv
        flag = {argv[k]: argv[k + 1] for k in range(len(argv) - 1) if argv[k].startswith("--")}
        kind = argv[2]
        if kind == "opus100":
            first, second, _ = _opus_pair(flag["--pair"], flag.get("--split", "train"))
            a, b = first.code, second.code
        else:
            a, b = get_language(flag.get("--with", "eng_Latn")).code, get_language(flag["--lang"]).code
        direction = flag.get("--direction", "en-xx")
        if direction in ("en-xx", "both"):
            out.add((kind, a, b))
        if direction in ("xx-en", "both"):
            out.add((kind, b, a))
    return out


def _paper_tables():
    from aligninstruct_cli.experiment.study_config import load_experiment

    for path in PAPER_CONFIGS:
        exp = load_experiment(path)
        for name, table in exp.tables.items():
            if table.paper is not None:
                yield pytest.param(path, name, id=f"{path.stem}:{name}")


@pytest.mark.parametrize("path, name", list(_paper_tables()))
def test_each_paper_table_plans_the_papers_rows_test_sets_and_directions(path, name):
    """Every table of every paper config (examples/paper/) against the published table it names: its systems
    are the paper's rows, and the directions its plan translates give exactly the paper's columns."""
    from aligninstruct_cli.experiment.paper_rows import paper_rows
    from aligninstruct_cli.experiment.study_config import load_experiment
    from aligninstruct_cli.experiment.graph import build_graph
    from aligninstruct_cli.languages import bloom_seen
    from aligninstruct_cli.metrics.groups import Direction, groups_of
    from aligninstruct_cli.metrics.report import LAYOUT_GROUPS

    exp = load_experiment(path)
    graph = build_graph(exp)
    table = exp.tables[name]
    narrow = {k: table.paper[k] for k in ("model", "setting") if k in table.paper}
    rows = paper_rows(table)
    # each row is the paper's; only a baseline may be missing from it (Table 7 compares with Table 5's MTInstruct)
    assert all(row is not None for system, row in rows.items() if system != table.baseline), rows
    assert sorted(r for r in rows.values() if r) == sorted(paper_systems(table.paper["table"], **narrow))
    if "model" in table.paper:
        assert {exp.systems[s].model for s in rows} == {f"bigscience/{table.paper['model']}"}
    systems = list(rows)
    directions = _plan_directions(graph, systems)
    assert all(_plan_directions(graph, [s]) == directions for s in systems)  # every row on the same test sets
    paper = set(paper_columns(table.paper["table"]))
    is_direction = {c for c in paper if "-" in c[1]}
    layout = {**exp.score, **table.score}.get("layout", "ait")
    names = {**exp.score, **table.score}.get("groups") or LAYOUT_GROUPS[layout]
    groups = {(d[0], g.name) for d in directions for g in groups_of(Direction(*d), bloom_seen()) if g.name in names}
    if is_direction:  # the per-language tables: every direction, then the groups
        assert {(t, f"{a}-{b}") for t, a, b in directions} == is_direction
    assert groups == paper - is_direction


def test_table5_scores_30_zero_shot_and_12_supervised_opus100_directions():
    from aligninstruct_cli.experiment.study_config import load_experiment
    from aligninstruct_cli.experiment.graph import build_graph

    exp = load_experiment(Path(__file__).resolve().parents[1] / "examples" / "paper" / "bloomz3.yaml")
    graph = build_graph(exp)
    table = exp.tables["table5-de-nl-ru"]
    directions = _plan_directions(graph, [table.baseline, *table.systems])
    assert {t for t, _, _ in directions} == {"opus100"}
    assert len([d for d in directions if "en" not in d[1:]]) == 30
    assert len([d for d in directions if "en" in d[1:]]) == 12


# ---------------------------------------------------------------------------------------------- compare_to: paper
def _fake_hyps(path: Path, quality: int) -> None:
    """OPUS-100 and FLORES-200 records (ids as `ait data` makes them) with hypotheses that get `quality` of
    every 4 words right."""
    import orjson

    lines = []
    for testset, lang in (("opus100.en-kk.test", "kk"), ("flores200.devtest", "kk")):
        for n in range(1, 9):
            for src, tgt in (("en", lang), (lang, "en")):
                ref = f"the {n} cat sat on mat number {n} today"
                words = ref.split()
                hyp = " ".join(w if k % 4 < quality else "dog" for k, w in enumerate(words))
                lines.append(orjson.dumps({"id": f"{testset}.{n}.{src}-{tgt}", "src_lang": src, "tgt_lang": tgt,
                                           "src": ref, "tgt": ref, "hyp": hyp}))
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_report_with_compare_to_paper_puts_the_papers_rows_under_ours(tmp_path):
    """A tiny study reusing the paper's system names (MTInstruct, MT+Align, as Table 1's 7b1 rows), its
    translations faked and scored by the real `ait score`: the report shows each paper row and the difference,
    and says what cannot be compared."""
    import yaml
    from typer.testing import CliRunner

    from aligninstruct_cli.cli import app
    from aligninstruct_cli.experiment.study_config import load_experiment
    from aligninstruct_cli.experiment.graph import build_graph
    from aligninstruct_cli.experiment.report import write_report
    from aligninstruct_cli.experiment.steps import finish_step

    test = tmp_path / "test.jsonl"
    _fake_hyps(test, 4)
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({
        "output": str(tmp_path / "out"), "compare_to": "paper",
        "corpora": {"test": {"file": str(test)}}, "test_sets": ["test"],
        "systems": {"MTInstruct": {"model": "bigscience/bloomz-7b1"},  # two translations: not one shared step
                    "MT+Align": {"model": "bigscience/bloomz-7b1", "translate": {"batch_size": 8}}},
        "score": {"metrics": ["bleu", "chrf"]},
        "tables": {"t1": {"baseline": "MTInstruct", "systems": ["MT+Align"], "score": {"layout": "table1"},
                          "paper": {"table": 1, "model": "bloomz-7b1"}}}}, allow_unicode=True), encoding="utf-8")
    graph = build_graph(load_experiment(config))
    hyps = {}
    for name, quality in (("MTInstruct", 2), ("MT+Align", 3)):
        key = graph.by_name[f"translate/{name}"]
        graph.directory(key).mkdir(parents=True)
        _fake_hyps(graph.output(key), quality)
        finish_step(graph.directory(key), [f"translate/{name}"], "translate", key, "fake", 0, 0.0, "")
        hyps[name] = str(graph.output(key))
    key = graph.by_name["score/t1"]
    graph.directory(key).mkdir(parents=True)
    result = CliRunner().invoke(app, ["score", hyps["MT+Align"], "--baseline", hyps["MTInstruct"], "--names",
                                      "MT+Align", "--baseline-name", "MTInstruct", "--metrics", "bleu,chrf",
                                      "--layout", "table1", "--format", "json", "-o", str(graph.output(key))])
    assert result.exit_code == 0, result.output
    finish_step(graph.directory(key), ["score/t1"], "score", key, "fake", 0, 0.0, "")

    path, missing = write_report(graph)
    beside = (tmp_path / "out" / "tables" / "t1.paper.md").read_text(encoding="utf-8")
    report = path.read_text(encoding="utf-8")
    assert beside in report and "Beside the paper** (Table 1, bloomz-7b1)" in beside
    scores = orjson_load(graph.output(key))
    ours = {s["name"]: s["groups"]["opus100.test:en→xx"]["bleu"]["score"] for s in scores["systems"]}
    rows = [line for line in beside.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| System |  | opus100.test:en→xx BLEU | opus100.test:en→xx chrF++ |")
    mt_align = rows[rows.index(next(r for r in rows if r.startswith("| MT+Align | ait |"))):][:3]
    assert mt_align[0].split(" | ")[2] == f"{ours['MT+Align']:.2f}"
    assert mt_align[1].startswith("|  | paper: MT+Align | 12.28 | 26.17 | 18.72 | 34.02 | 3.26 | 17.20 | 11.60 | 27.38 |")
    assert mt_align[2].split(" | ")[2] == f"{ours['MT+Align'] - 12.28:+.2f}"
    assert any(r.startswith("|  | paper: MTInstruct | 11.54 |") for r in rows)
    # what cannot be compared: FLORES+ for FLORES-200 v1, the precision, single runs (no COMET here)
    assert "FLORES-200 (v1" in beside and "fp16" in beside and "one run per system" in beside
    assert "checkpoint" not in beside
    assert "Columns of this study the paper's table does not have: 4" in beside  # the directions


def orjson_load(path: Path):
    import orjson

    return orjson.loads(path.read_bytes())


def test_per_language_and_per_direction_layouts(tmp_path):
    """`languages` (Tables 11–13): a row per language with en→xx and xx→en per test set, then avg.;
    `directions` (Tables 14–18): a row per direction, then the groups."""
    from aligninstruct_cli.metrics.report import render
    from aligninstruct_cli.metrics.score_options import ScoreOptions
    from aligninstruct_cli.metrics.scoring import score

    hyps = tmp_path / "h.jsonl"
    _fake_hyps(hyps, 3)
    report, _ = score([str(hyps)], ScoreOptions(metrics=["bleu"], layout="languages", names=["MT+Align"]))
    lines = render(report, "markdown", "languages").splitlines()
    assert lines[0] == ("| System | Language | opus100.test:en→xx BLEU | opus100.test:xx→en BLEU | "
                        "flores200.devtest:en→xx BLEU | flores200.devtest:xx→en BLEU |")
    bleu = report["systems"][0]["directions"]["opus100.test:kk-en"]["bleu"]["score"]
    assert lines[2].startswith("| MT+Align | kk | ") and f"| {bleu:.2f} [" in lines[2]
    assert lines[3].startswith("| MT+Align | avg. | ")
    # beside Table 13 (MT+Align, per language), the averages said to be over other directions
    from aligninstruct_cli.paper.compare import compare_rows, render_comparison

    cell = next(c for c in compare_rows(report, {"table": "13"}, {"MT+Align": "MT+Align"})
                if c["key"] == "opus100.test:kk-en")
    assert (cell["ait"], cell["paper"], cell["diff"]) == (bleu, 15.6, bleu - 15.6)
    beside = render_comparison(report, {"table": "13"}, {"MT+Align": "MT+Align"})
    assert "opus100.test:kk-en BLEU" in beside and "| 15.60 |" in beside
    assert "This study has 4 of the paper's 96 directions" in beside
    report, _ = score([str(hyps)], ScoreOptions(metrics=["bleu"], layout="directions", names=["MT+Align"]))
    rows = [line.split(" | ")[0][2:] for line in render(report, "markdown", "directions").splitlines()[2:]
            if line.startswith("| ")]
    assert rows == ["opus100.test:en-kk", "opus100.test:kk-en", "flores200.devtest:en-kk", "flores200.devtest:kk-en",
                    "opus100.test:en→xx", "opus100.test:xx→en", "opus100.test:en→unseen", "opus100.test:unseen→en",
                    "flores200.devtest:en→xx", "flores200.devtest:xx→en", "flores200.devtest:en→unseen",
                    "flores200.devtest:unseen→en"]
