"""Tiny models built locally from a config and a tokenizer trained on the spot (no hub download).

Used by the test suite (one model per session, see tests/conftest.py) and by `ait demo`. The tokenizer
mirrors BLOOM's: byte-level BPE with <unk>=0, <s>=1, </s>=2, <pad>=3."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterable

from aligninstruct_cli.metrics.comet_model import build_random_comet

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]


# Qwen2-Instruct's ChatML template (shortened: no default system prompt), for the tiny chat model's tokenizer.
CHATML_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
                   "+ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                   "{% endif %}")
CHATML_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, *, vocab_size: int = 1000,
                    padding_side: str = "left", style: str = "bloom"):
    """Train a byte-level BPE tokenizer on `texts`, save it as a transformers fast tokenizer, return it.

    `style` sets the special tokens as the real families have them: `bloom` (<unk> <s> </s> <pad>, no BOS
    added), `llama` (<unk> <s> </s>, BOS added to every encoding, NO pad token) or `qwen2` (ChatML:
    <|endoftext|> pads, <|im_end|> ends a turn and is EOS as in Qwen2-Instruct, no BOS, a chat template)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # lazy: tokenizers
    from transformers import PreTrainedTokenizerFast  # lazy: transformers

    specials = CHATML_TOKENS if style == "qwen2" else SPECIAL_TOKENS[:3] if style == "llama" else SPECIAL_TOKENS
    tok = Tokenizer(models.BPE(unk_token=None if style == "qwen2" else "<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    if style == "llama":
        bos = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", bos)])
    tokens: dict = ({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"} if style == "qwen2" else
                    {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"} if style == "llama" else
                    {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"})
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, padding_side=padding_side, **tokens,
                                   model_input_names=["input_ids", "attention_mask"])  # as BLOOM's: no token_type_ids
    if style == "qwen2":
        fast.chat_template = CHATML_TEMPLATE
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    # transformers 5 names the class TokenizersBackend, which 4.x cannot load; both know this name
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") != "PreTrainedTokenizerFast":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return fast


def build_tiny_bloom(out_dir: str | Path, tokenizer, *, hidden_size: int = 64, n_layer: int = 2,
                     n_head: int = 4, seed: int = 0):
    """A randomly initialised BloomForCausalLM of the given shape, saved with `tokenizer` to `out_dir`."""
    import torch  # lazy: torch
    from transformers import BloomConfig, BloomForCausalLM  # lazy: transformers

    torch.manual_seed(seed)
    config = BloomConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, n_layer=n_layer, n_head=n_head,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = BloomForCausalLM(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return model


def build_tiny_llama(out_dir: str | Path, tokenizer, *, hidden_size: int = 64, n_layer: int = 2, n_head: int = 4,
                     n_kv_head: int = 2, seed: int = 0):
    """A randomly initialised LlamaForCausalLM (grouped-query attention, rotary positions, SwiGLU), saved with
    `tokenizer` (a `train_tokenizer(style="llama")` one: no pad token, as Llama's) to `out_dir`."""
    from transformers import LlamaConfig, LlamaForCausalLM  # lazy: transformers

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=n_layer, num_attention_heads=n_head, num_key_value_heads=n_kv_head,
                         max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=None, tie_word_embeddings=False)
    return _save_tiny(LlamaForCausalLM, config, out_dir, tokenizer, seed)


def build_tiny_qwen2(out_dir: str | Path, tokenizer, *, hidden_size: int = 64, n_layer: int = 2, n_head: int = 4,
                     n_kv_head: int = 2, seed: int = 0):
    """A randomly initialised Qwen2ForCausalLM (biased q/k/v projections, tied embeddings as the small Qwen2s),
    saved with `tokenizer` (a `train_tokenizer(style="qwen2")` one, with a chat template) to `out_dir`."""
    from transformers import Qwen2Config, Qwen2ForCausalLM  # lazy: transformers

    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=n_layer, num_attention_heads=n_head, num_key_value_heads=n_kv_head,
                         max_position_embeddings=512, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None, tie_word_embeddings=True)
    return _save_tiny(Qwen2ForCausalLM, config, out_dir, tokenizer, seed)


def _save_tiny(model_class, config, out_dir: str | Path, tokenizer, seed: int):
    import torch  # lazy: torch

    torch.manual_seed(seed)
    model = model_class(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return model


def sample_texts(n: int = 400, seed: int = 0) -> list[str]:
    """Deterministic pseudo-sentences (English-like words plus a toy language) for tokenizer training."""
    rng = random.Random(seed)
    words = ("the a cat dog house river small big red green walks sees eats water tree bird sun moon "
             "translate from to english kazakh true false given following parallel sentence judge "
             "whether assertion can be aligned with statistically").split()
    toy = ["".join(rng.choice("aeioukltmnrsz") for _ in range(rng.randint(2, 7))) for _ in range(60)]
    vocab = words + toy
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 14))) for _ in range(n)]


# ------------------------------------------------------------------------- tiny COMET (added for ait score)
def build_tiny_comet(out_dir: str | Path, *, texts: Iterable[str] | None = None, seed: int = 0) -> Path:
    """A randomly initialised COMET regression metric on a 2-layer XLM-R, laid out as a COMET model dir
    (`hparams.yaml`, `checkpoints/model.ckpt`, plus `encoder/` with the XLM-R config and a locally trained
    tokenizer that `pretrained_model` points at). Returns the checkpoint path; no download involved, and no
    unbabel-comet needed (the checkpoint is one comet's `load_from_checkpoint` reads too)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # lazy: tokenizers
    from transformers import XLMRobertaConfig, XLMRobertaTokenizerFast  # lazy: transformers

    out = Path(out_dir)
    encoder = out / "encoder"
    encoder.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids 0..3, mask after them
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts or sample_texts(), trainer=trainers.UnigramTrainer(
        vocab_size=300, special_tokens=specials, unk_token="<unk>", show_progress=False))
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                       special_tokens=[("<s>", bos), ("</s>", eos)])
    fast = XLMRobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    fast.save_pretrained(encoder)
    XLMRobertaConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
                     eos_token_id=2, type_vocab_size=1).save_pretrained(encoder)

    return build_random_comet(out, encoder, hidden_sizes=(16,), seed=seed)
