"""Regenerate `results.tsv` from the paper's text (`python -m aligninstruct_cli.paper.transcribe PAPER.txt`).

The text is the PDF's extraction (`../shared/paper/alignInstruct-paper.txt`): each table's cells are tab-separated
but rows are not always where the PDF has them (a model's name can sit on another row). So each table is read
by what the paper says its shape is (how many rows a model has, which labels a row can carry), and every
number is taken from the text as written; nothing is computed. A cell the extraction lost (Table 7's de-nl-ru
unseen→en) is left out, not derived. tests/test_paper.py checks the shipped file against a fresh transcription
and the tables against each other (Table 1 = Tables 11–13's averages, Table 5 = Tables 14–18's groups)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from aligninstruct_cli.paper import COLUMNS, SETTING_24, SETTING_3, SETTING_6

NUM = r"\d+\.\d+"
# a cell run of the text: a label, then its BLEU, chrF++ and COMET
CELL_RUN = re.compile(rf"(?:^|\t)([^\t]+?)\t+({NUM})\t({NUM})\t({NUM})(?=\t|$)")
METRICS = ("BLEU", "chrF++", "COMET")
TABLE1_COLUMNS = [("opus100", "en→xx"), ("opus100", "xx→en"), ("flores200", "en→xx"), ("flores200", "xx→en")]
ZERO_SHOT_GROUPS = ("overall", "seen→seen", "seen→unseen", "unseen→seen", "unseen→unseen")
SUPERVISED_GROUPS = ("en→xx", "xx→en", "en→seen", "en→unseen", "seen→en", "unseen→en")
MODELS = ("bloomz-7b1", "bloomz-3b", "bloomz-1b1")


def table_lines(text: str, number: int) -> list[str]:
    """The lines of Table `number`: from its header (the last `BLEU` header line before the caption, the line
    above it included) to its caption."""
    lines = text.splitlines()
    caption = next(k for k, line in enumerate(lines) if line.startswith(f"Table {number}:"))
    start = caption
    while start > 0 and not lines[start - 1].startswith("Table ") and not _is_prose(lines[start - 1]):
        start -= 1
    return [line for line in lines[start:caption] if line.strip()]


def _is_prose(line: str) -> bool:
    return "\t" not in line and len(line) > 60


def _numbers(line: str) -> list[str]:
    return re.findall(rf"(?<![\w.]){NUM}(?![\w.])", line)


def _label(line: str) -> str:
    """The row's label: the last cell before the first number."""
    cells = [c.strip() for c in line.split("\t")]
    before = []
    for cell in cells:
        if re.fullmatch(NUM, cell):
            break
        if cell:
            before.append(cell)
    return before[-1] if before else ""


def _cells(table: str, model: str, setting: str, system: str, columns: list[tuple[str, str]], values: list[str]):
    assert len(values) == 3 * len(columns), (table, system, values)
    for k, (testset, group) in enumerate(columns):
        for m, metric in enumerate(METRICS):
            yield (table, model, setting, system, testset, group, metric, values[3 * k + m])


def by_rows(text: str, number: int, models: tuple[str, ...], rows_per_model: int, columns) -> list[tuple]:
    """Tables 1–4 and 9: one row per system, 3 × len(columns) numbers; models in the paper's order, each with
    `rows_per_model` rows (the model name's own position in the text is not trusted)."""
    rows = [line for line in table_lines(text, number) if len(_numbers(line)) == 3 * len(columns)]
    assert len(rows) == len(models) * rows_per_model, (number, len(rows))
    out = []
    prompt = ""
    for k, line in enumerate(rows):
        model = models[k // rows_per_model]
        system = _label(line)
        if number == 9:  # `PROMPT-1\tMTInstruct\t...` then `\tMT+Align\t...`: the prompt is a row variant
            first = line.split("\t")[0].strip()
            prompt = first or prompt
            system = system if prompt == "PROMPT-default" else f"{system} {prompt}"
        out += _cells(str(number), model, SETTING_24, system, columns, _numbers(line))
    return out


def labelled(text: str, number: int, labels: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """(label, 3 numbers) for every `label BLEU chrF++ COMET` cell run in the table, in text order."""
    found = []
    for line in table_lines(text, number):
        for m in CELL_RUN.finditer(line):
            if m.group(1).strip() in labels:
                found.append((m.group(1).strip(), list(m.group(2, 3, 4))))
    return found


def table5_like(text: str, number: int, blocks: list[tuple[str, str, str]], labels: tuple[str, ...]) -> list[tuple]:
    """Tables 5 and 7: blocks of (marker, setting, system); a line with a cell equal to the next block's marker
    starts that block, and every `label BLEU chrF++ COMET` cell run after it belongs to it."""
    out = []
    k = -1
    for line in table_lines(text, number):
        if k + 1 < len(blocks) and blocks[k + 1][0] in [c.strip() for c in line.split("\t")]:
            k += 1
        for m in CELL_RUN.finditer(line):
            if m.group(1).strip() in labels and k >= 0:
                _, setting, system = blocks[k]
                out += _cells(str(number), "bloomz-7b1", setting, system, [("opus100", m.group(1).strip())],
                              list(m.group(2, 3, 4)))
    return out


def per_language(text: str, number: int, system: str) -> list[tuple]:
    """Tables 11–13: a row per language (`avg.`: the en→xx / xx→en groups of Table 1), 12 numbers."""
    out = []
    for line in table_lines(text, number):
        values = _numbers(line)
        if len(values) != 12:
            continue
        lang = line.split("\t")[0].strip()
        if lang == "avg.":
            columns = TABLE1_COLUMNS
        else:
            columns = [(t, f"en-{lang}" if g == "en→xx" else f"{lang}-en") for t, g in TABLE1_COLUMNS]
        out += _cells(str(number), "bloomz-7b1", SETTING_24, system, columns, values)
    return out


def per_direction(text: str, number: int, setting: str, system: str) -> list[tuple]:
    """Tables 14–18: zero-shot directions (`ar-de`) and their avg. (overall), supervised directions with
    English (first avg.: en→xx, second: xx→en), then the seen/unseen groups."""
    out = []
    avgs = iter(("en→xx", "xx→en", "overall"))  # the order the text has them in (rows are interleaved)
    for line in table_lines(text, number):
        for m in CELL_RUN.finditer(line):
            label = m.group(1).strip()
            if label == "avg.":
                label = next(avgs)
            elif not (re.fullmatch(r"[a-z]{2}-[a-z]{2}", label) or label in ZERO_SHOT_GROUPS + SUPERVISED_GROUPS):
                continue
            out += _cells(str(number), "bloomz-7b1", setting, system, [("opus100", label)], list(m.group(2, 3, 4)))
    return out


def table10(text: str) -> list[tuple]:
    """Table 10 (ar-de-fr-nl-ru-zh): direct zero-shot, then through English, MTInstruct left, MT+Align right."""
    out = []
    found = labelled(text, 10, ZERO_SHOT_GROUPS)
    assert len(found) == 20, len(found)
    for k, (label, values) in enumerate(found):
        pivot = " pivot" if k >= 10 else " direct"
        system = ("MTInstruct", "MT+Align")[k % 2] + pivot
        out += _cells("10", "bloomz-7b1", SETTING_6, system, [("opus100", label)], values)
    return out


def transcribe(text: str) -> list[tuple]:
    t1 = TABLE1_COLUMNS
    rows = by_rows(text, 1, MODELS, 6, t1) + by_rows(text, 2, MODELS, 4, t1)
    rows += by_rows(text, 3, MODELS[:1], 6, t1) + by_rows(text, 4, MODELS[:1], 7, t1)
    groups = ZERO_SHOT_GROUPS + SUPERVISED_GROUPS
    rows += table5_like(text, 5, [("w/o fine-tuning", "", "w/o fine-tuning"), ("MTInstruct", SETTING_3, "MTInstruct"),
                                  ("MT+Align", SETTING_3, "MT+Align"), ("MTInstruct", SETTING_6, "MTInstruct"),
                                  ("MT+Align", SETTING_6, "MT+Align")], groups)
    rows += table5_like(text, 7, [(SETTING_3, SETTING_3, "MT+Align+Hint+Revise"),
                                  (SETTING_6, SETTING_6, "MT+Align+Hint+Revise")], groups)
    rows += by_rows(text, 9, MODELS[:1], 12, [("opus100", "en→xx"), ("opus100", "xx→en")])
    rows += table10(text)
    for number, system in ((11, "w/o fine-tuning"), (12, "MTInstruct"), (13, "MT+Align")):
        rows += per_language(text, number, system)
    for number, setting, system in ((14, "", "w/o fine-tuning"), (15, SETTING_3, "MTInstruct"),
                                    (16, SETTING_3, "MT+Align"), (17, SETTING_6, "MTInstruct"),
                                    (18, SETTING_6, "MT+Align")):
        rows += per_direction(text, number, setting, system)
    return rows


def render(rows: list[tuple]) -> str:
    return "\t".join(COLUMNS) + "\n" + "".join("\t".join(row) + "\n" for row in rows)


def main(argv: list[str]) -> None:
    text = Path(argv[0]).read_text(encoding="utf-8")
    out = Path(__file__).with_name("results.tsv")
    out.write_text(render(transcribe(text)), encoding="utf-8")
    print(f"{out}: written")


if __name__ == "__main__":
    main(sys.argv[1:])
