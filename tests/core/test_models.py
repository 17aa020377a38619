"""models.py: an adapter is matched to its base model by content, not by path (a copy anywhere is accepted;
another model in a folder of the same name is refused, naming both)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.options import OptionError
from conftest import parallel_record, write_jsonl

runner = CliRunner()


@pytest.fixture(scope="module")
def lora(tmp_path_factory, tiny_bloom_dir):
    """A LoRA adapter trained (made) on the tiny BLOOM, saved by PEFT with ait's base fingerprint."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from aligninstruct_cli import models

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_bloom_dir),
                           LoraConfig(r=4, target_modules=["query_key_value"], task_type="CAUSAL_LM"))
    out = tmp_path_factory.mktemp("lora")
    model.save_pretrained(out)
    models.write_base_fingerprint(out, str(tiny_bloom_dir))
    return out


def test_an_adapter_config_that_is_not_a_json_object_is_an_error(tmp_path):
    from aligninstruct_cli import models
    from aligninstruct_cli.errors import AitError

    (tmp_path / "adapter_config.json").write_text("[]")
    for check in (models.adapter_base_model, models.check_adapter_files):
        with pytest.raises(AitError, match="adapter_config.json: unreadable adapter config: not a JSON object"):
            check(str(tmp_path))


def test_an_adapter_goes_with_a_copy_of_its_base_wherever_it_lies(tmp_path, tiny_bloom_dir, lora):
    import shutil

    from aligninstruct_cli import models

    copy = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(tiny_bloom_dir, copy)
    models.check_adapter_base(str(lora), str(copy))  # same content: accepted, whatever its path
    loaded = models.load_model(str(copy), str(lora), device="cpu")
    assert loaded.adapter == str(lora)


def test_another_model_in_a_same_named_folder_is_refused_naming_both(tmp_path, tiny_bloom_dir, tiny_tokenizer_dir,
                                                                    lora):
    from transformers import AutoTokenizer

    from aligninstruct_cli import models
    from aligninstruct_cli.tiny import build_tiny_bloom

    impostor = tmp_path / Path(tiny_bloom_dir).name  # the same folder name, another model
    build_tiny_bloom(impostor, AutoTokenizer.from_pretrained(tiny_tokenizer_dir), hidden_size=32)
    with pytest.raises(OptionError, match=r"whose architecture differs from .*\(hidden_size 64 vs 32\)"):
        models.check_adapter_base(str(lora), str(impostor))
    same_shape = tmp_path / "same-shape" / Path(tiny_bloom_dir).name
    build_tiny_bloom(same_shape, AutoTokenizer.from_pretrained(tiny_tokenizer_dir), seed=7)
    with pytest.raises(OptionError, match="same architecture, different weights"):
        models.check_adapter_base(str(lora), str(same_shape))
    # an adapter whose base cannot be examined: the layer shapes are still compared, before PEFT's traceback
    (lora.parent / "bare").mkdir(exist_ok=True)
    bare = lora.parent / "bare"
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (bare / name).write_bytes((lora / name).read_bytes())
    config = json.loads((bare / "adapter_config.json").read_text())
    (bare / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "/gone/model"}))
    models.check_adapter_base(str(bare), str(impostor))  # cannot tell: a warning only
    result = runner.invoke(app, ["translate", str(write_jsonl(tmp_path / "s.jsonl", [parallel_record(1)])), "--model",
                                 str(impostor), "--adapter", str(bare), "-o", str(tmp_path / "h.jsonl")])
    assert result.exit_code == 2, result.output
    assert "does not fit" in result.output and "is 32→96 in the model" in result.output
    assert "Traceback" not in result.output
