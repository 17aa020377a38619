"""`ait train --length-budget`: the paper's "maximum input and output length 384" read as one budget for input +
output (ait's reading, the default) or one for each side."""

from __future__ import annotations

import pytest

from aligninstruct_cli.errors import InputError


def _record(n: int, src_words: int, out_words: int) -> tuple[int, dict]:
    return n, {"id": f"r{n}", "objective": "mt", "src_lang": "en", "tgt_lang": "kk",
               "input": " ".join(["cat"] * src_words), "output": " ".join(["dog"] * out_words)}


@pytest.fixture()
def tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def _tokenize(tokenizer, records, **kwargs):
    from aligninstruct_cli.training.examples import tokenize_records

    return tokenize_records(records, tokenizer, path="f.jsonl", max_length=40, progress=False, **kwargs)


def test_together_and_each_read_the_budget_differently(tokenizer):
    records = [_record(1, 30, 30)]  # about 30 input and 31 output tokens: over 40 together, under 40 each
    sides = _tokenize(tokenizer, records, too_long="error", length_budget="each")
    assert len(sides) == 1 and 40 < sides.lengths[0] <= 80 and sides.stats["truncated"] == 0
    together = _tokenize(tokenizer, records, too_long="truncate-input")
    assert together.lengths[0] == 40 and together.stats["truncated"] == 1
    assert together.lengths[0] - together.prompt_len[0] == sides.lengths[0] - sides.prompt_len[0]  # output whole
    with pytest.raises(InputError, match="61 tokens, longer than --max-length 40"):
        _tokenize(tokenizer, records, too_long="error")


@pytest.mark.parametrize("too_long, kept, input_cut", [("truncate-input", 1, True), ("truncate", 2, True),
                                                        ("skip", 0, False)])
def test_each_applies_too_long_per_side(tokenizer, too_long, kept, input_cut):
    long_input, long_output = _record(1, 60, 5), _record(2, 5, 60)
    data = _tokenize(tokenizer, [long_input, long_output], too_long=too_long, length_budget="each")
    assert len(data) == kept
    assert all(p <= 40 and n - p <= 40 for p, n in zip(data.prompt_len, data.lengths))
    if input_cut:  # the long input, cut to the budget (truncate-input drops the long output: it stays whole or goes)
        assert data.prompt_len[0] == 40
    if too_long == "truncate":
        assert data.lengths[1] - data.prompt_len[1] == 40
    with pytest.raises(InputError, match="on a side"):
        _tokenize(tokenizer, [long_output], too_long="error", length_budget="each")


def test_option_cache_key_and_memory_length():
    from aligninstruct_cli.training.examples import cache_key
    from aligninstruct_cli.training.train_options import TrainOptions

    options = TrainOptions(model="m", data={"mt": "x.jsonl"}, output="o", length_budget="each")
    assert options.example_limit == 768 and TrainOptions(model="m", data={"mt": "x"}, output="o").example_limit == 384
    assert cache_key("h", "t", 384, "truncate-input") != cache_key("h", "t", 384, "truncate-input", "", "each")
    assert cache_key("h", "t", 384, "truncate-input") == cache_key("h", "t", 384, "truncate-input", "", "together")
    with pytest.raises(Exception, match="together"):
        TrainOptions(model="m", data={"mt": "x"}, output="o", length_budget="both")
