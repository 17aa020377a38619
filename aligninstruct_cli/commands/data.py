"""`ait data`: real parallel data by name (OPUS-100, FLORES-200) as parallel JSONL."""

from __future__ import annotations

from typing import Optional

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console, data
from aligninstruct_cli.commands._options import OutputOpt
from aligninstruct_cli.io import RecordWriter

data_app = typer.Typer(help="Fetch real parallel data by name (OPUS-100, FLORES-200) as parallel JSONL.",
                       no_args_is_help=True)

SourceOpt = Annotated[Optional[str], typer.Option(
    "--source", help="Local directory (release text files or a copy of the hub repo's parquet files) "
                     "instead of the Hugging Face hub.")]
DirectionOpt = Annotated[str, typer.Option(
    "--direction", help="en-xx: English (or --with) as source; xx-en: reversed; both: one record each way.")]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", help="Stop after this many records.")]


@data_app.command("opus100")
def opus100(
    pair: Annotated[str, typer.Option("--pair", help="Language pair, e.g. en-kk (either order).")],
    split: Annotated[str, typer.Option("--split", help="train, dev (= validation) or test.")] = "train",
    source: SourceOpt = None,
    direction: DirectionOpt = "en-xx",
    limit: LimitOpt = None,
    output: OutputOpt = "-",
) -> None:
    """OPUS-100 (Helsinki-NLP/opus-100 on the hub) for one English-centric pair."""
    with RecordWriter(output) as out:
        n = out.write_many(data.opus100(pair, split, source=source, direction=direction, limit=limit))
    console.info(f"opus100 {pair} {split}: wrote {n} records")


@data_app.command("flores200")
def flores200(
    lang: Annotated[str, typer.Option("--lang", help="FLORES-200 code (kaz_Cyrl) or ISO code (kk).")],
    split: Annotated[str, typer.Option("--split", help="dev or devtest.")] = "devtest",
    with_lang: Annotated[str, typer.Option("--with", help="The language paired with --lang (any FLORES "
                                           "language, for zero-shot directions).")] = "eng_Latn",
    source: SourceOpt = None,
    direction: DirectionOpt = "en-xx",
    limit: LimitOpt = None,
    output: OutputOpt = "-",
) -> None:
    """FLORES-200 (openlanguagedata/flores_plus on the hub, gated) paired by sentence."""
    with RecordWriter(output) as out:
        n = out.write_many(data.flores200(lang, split, with_lang=with_lang, source=source,
                                          direction=direction, limit=limit))
    console.info(f"flores200 {lang} {split}: wrote {n} records")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
