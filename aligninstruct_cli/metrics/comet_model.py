"""COMET regression models (wmt22-comet-da and its kind) scored by ait in plain torch, under transformers 4.x and
5.x, without unbabel-comet (which needs transformers<5) and without unpickling code.

A COMET model directory holds `hparams.yaml` and `checkpoints/model.ckpt` (a PyTorch Lightning checkpoint). ait
reads the hyper-parameters with a safe YAML loader and the checkpoint with `torch.load(weights_only=True)`: tensors
and plain containers only; a checkpoint that needs anything else is refused (comet itself unpickles it in full,
so a checkpoint from an untrusted source could run code there). The weights go into the same modules, under the
same names, as unbabel-comet's `RegressionMetric` (comet 2.2.x, read from its source):

- encoder: transformers' `XLMRobertaModel` (no pooling layer) built from the config of `pretrained_model`, its
  tokenizer called on each side (src, mt, ref) of a batch with padding and truncation to
  `max_position_embeddings - 4` tokens; every hidden state, embeddings included, is kept;
- layer mix (`layer: mix`): softmax (or sparsemax) of one scalar per hidden state, times `gamma`, over the
  hidden states, each first normalised over its unmasked tokens when `layer_norm` (eval mode: the mix's
  dropout only acts in training); or one layer by index;
- pooling: `avg` (the mean over non-pad tokens), `max`, `cls` or `default` (the first token of the last layer);
- estimator: a feed-forward net (Linear, activation, Dropout per hidden size, then Linear to 1, then the final
  activation if any) over [mt, ref, mt*ref, |mt-ref|, mt*src, |mt-src|]; no clipping.

Segments are scored in batches sorted by length (longest first), in fp32 as comet's predict, and returned in
input order. Other model kinds (referenceless, unified such as cometkiwi/xcomet, ranking; non-XLM-R encoders)
are not implemented here: `metrics/comet.py` hands them to unbabel-comet when it is installed."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from aligninstruct_cli.errors import AitError

SUPPORTED_CLASS = "regression_metric"
SUPPORTED_ENCODER = "XLM-RoBERTa"
ACTIVATIONS = ("Tanh", "Sigmoid", "Softplus", "Softsign", "Mish", "Hardtanh", "Tanhshrink")  # torch.nn names
POOLS = ("avg", "max", "cls", "default")
# state-dict entries ait's modules do not hold: the mix's training-only dropout buffers, an old position-id buffer
IGNORED_KEYS = ("layerwise_attention.dropout_mask", "layerwise_attention.dropout_fill",
                "encoder.model.embeddings.position_ids")


class UnsupportedCometModel(AitError):
    """A COMET checkpoint of a kind ait does not score itself (unbabel-comet may)."""


@dataclass(frozen=True)
class CometHparams:
    """The hyper-parameters of hparams.yaml that scoring depends on."""

    pretrained_model: str
    layer: Any = "mix"
    layer_transformation: str = "softmax"
    layer_norm: bool = True
    pool: str = "avg"
    hidden_sizes: tuple[int, ...] = (3072, 1024)
    activations: str = "Tanh"
    final_activation: str | None = None

    @classmethod
    def read(cls, path: Path) -> CometHparams:
        """Parse `path` (hparams.yaml); a model kind ait does not implement raises UnsupportedCometModel."""
        import yaml  # lazy: yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise AitError(f"{path}: cannot read the COMET hyper-parameters ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise AitError(f"{path}: not a COMET hparams.yaml (a mapping of hyper-parameters)")
        kind = data.get("class_identifier")
        encoder = data.get("encoder_model", SUPPORTED_ENCODER)
        if kind != SUPPORTED_CLASS or encoder != SUPPORTED_ENCODER:
            raise UnsupportedCometModel(f"{path}: a COMET {kind or 'model without class_identifier'} with a "
                                        f"{encoder} encoder; ait scores {SUPPORTED_CLASS} models with an "
                                        f"{SUPPORTED_ENCODER} encoder itself")
        hp = cls(
            pretrained_model=encoder_location(str(data.get("pretrained_model") or "xlm-roberta-large"), path.parent),
            layer=data.get("layer", "mix"),
            layer_transformation=str(data.get("layer_transformation", "softmax")),
            layer_norm=bool(data.get("layer_norm", True)),
            pool=str(data.get("pool", "avg")),
            hidden_sizes=tuple(data.get("hidden_sizes") or (3072, 1024)),
            activations=str(data.get("activations", "Tanh")),
            final_activation=data.get("final_activation"),
        )
        problems = []
        if hp.layer != "mix" and not (isinstance(hp.layer, int) and not isinstance(hp.layer, bool) and hp.layer >= 0):
            problems.append(f"layer {hp.layer!r} (mix or a layer number)")
        if hp.layer_transformation not in ("softmax", "sparsemax", "sparsemax_patch"):
            problems.append(f"layer_transformation {hp.layer_transformation!r}")
        if hp.pool not in POOLS:
            problems.append(f"pool {hp.pool!r} (one of {', '.join(POOLS)})")
        if not hp.hidden_sizes or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                                          for n in hp.hidden_sizes):
            problems.append(f"hidden_sizes {list(hp.hidden_sizes)!r}")
        for name in (hp.activations, hp.final_activation):
            if name is not None and str(name).title() not in ACTIVATIONS:
                problems.append(f"activation {name!r} (one of {', '.join(ACTIVATIONS)})")
        if problems:
            raise AitError(f"{path}: unsupported COMET hyper-parameters: {'; '.join(problems)}")
        return hp

    @property
    def mix_transformation(self) -> str:
        # comet >= 2.2.4 reads "sparsemax_patch" (checkpoints trained with a softmax mix by mistake) as softmax
        return "sparsemax" if self.layer_transformation == "sparsemax" else "softmax"


def load_checkpoint_weights(checkpoint: Path) -> dict:
    """The state dict of a Lightning checkpoint, read with torch.load(weights_only=True)."""
    import torch  # lazy: torch

    try:
        data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise AitError(f"{checkpoint}: refused: the checkpoint holds more than tensors and plain containers, so "
                       f"loading it could run code ({str(exc).splitlines()[0][:200]})",
                       hint="ait loads COMET checkpoints with torch.load(weights_only=True); re-save it as "
                            "{'state_dict': model.state_dict()} from a trusted environment") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise AitError(f"{checkpoint}: cannot read the COMET checkpoint ({str(exc).splitlines()[0][:200]})") from None
    state = data.get("state_dict") if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AitError(f"{checkpoint}: not a COMET checkpoint (no state_dict of tensors)")
    return state


class CometScorer:
    """A COMET regression model loaded by ait; `predict` scores segment dicts (src, mt, ref) in [0, 1]-ish units,
    as comet's `predict(...).scores` does."""

    implementation = "ait"

    def __init__(self, checkpoint: str | Path, *, device=None):
        import torch  # lazy: torch
        from transformers import XLMRobertaConfig  # lazy: transformers

        from aligninstruct_cli.metrics.comet_modules import CometRegression  # lazy: imports torch

        checkpoint = Path(checkpoint)
        self.hparams = CometHparams.read(checkpoint.parents[1] / "hparams.yaml")
        encoder = self.hparams.pretrained_model
        try:
            config = XLMRobertaConfig.from_pretrained(encoder)
            self.tokenizer = _xlmr_tokenizer(encoder)
        except (OSError, ValueError) as exc:
            raise AitError(f"{checkpoint}: cannot load the COMET encoder {encoder!r} (its config and tokenizer: "
                           f"{str(exc).splitlines()[0][:200]})") from None
        state = load_checkpoint_weights(checkpoint)
        self.model = CometRegression(config, self.hparams)
        result = self.model.load_state_dict(state, strict=False)
        unexpected = [k for k in result.unexpected_keys if k not in IGNORED_KEYS and not k.startswith("encoder.model.pooler.")]
        missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
        if missing or unexpected:
            names = ", ".join((missing or unexpected)[:5])
            raise AitError(f"{checkpoint}: its weights do not fit a COMET {SUPPORTED_CLASS} on this encoder "
                           f"({'missing' if missing else 'unexpected'}: {names})")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device).eval()
        self.pad_id = self.tokenizer.pad_token_id
        # comet: truncation to max_positions - 2, max_positions = max_position_embeddings - 2
        self.max_length = config.max_position_embeddings - 4

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer([str(t) for t in texts], truncation=True, max_length=self.max_length)["input_ids"]

    def _batch(self, rows: list[list[int]]):
        import torch  # lazy: torch

        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.pad_id] * (width - len(r)) for r in rows], dtype=torch.long)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long)
        return ids.to(self.device), mask.to(self.device)

    def predict(self, samples: Sequence[dict], batch_size: int = 16, **_ignored) -> Prediction:
        """Scores of `samples` in input order: batches of `batch_size` sorted by length, longest first (comet's
        own keyword arguments such as gpus and progress_bar are accepted and ignored)."""
        import torch  # lazy: torch

        src = self._encode([s["src"] for s in samples])
        mt = self._encode([s["mt"] for s in samples])
        ref = self._encode([s["ref"] for s in samples])
        order = sorted(range(len(samples)), key=lambda i: (-max(len(src[i]), len(mt[i]), len(ref[i])), i))
        scores = [0.0] * len(samples)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                out = self.model(self._batch([src[i] for i in batch]), self._batch([mt[i] for i in batch]),
                                 self._batch([ref[i] for i in batch]), self.pad_id)
                for i, score in zip(batch, out.float().tolist()):
                    scores[i] = score
        return Prediction(scores)


@dataclass
class Prediction:
    scores: list[float]


def _xlmr_tokenizer(name: str):
    """The encoder's tokenizer exactly as its tokenizer.json defines it (what comet's XLMRobertaTokenizerFast
    loads under transformers 4.x). transformers 5's XLMRobertaTokenizer rebuilds the pipeline from its class
    defaults instead, which tokenizes some texts otherwise (e.g. trailing spaces), so ait reads tokenizer.json
    itself and takes the XLM-R class only where there is none."""
    import transformers  # lazy: transformers
    from tokenizers import Tokenizer  # lazy: tokenizers

    path = Path(name).expanduser()
    if path.is_dir():
        file = path / "tokenizer.json"
        file = file if file.is_file() else None
    else:
        try:
            from huggingface_hub import hf_hub_download  # lazy: huggingface_hub

            file = Path(hf_hub_download(name, "tokenizer.json"))
        except Exception:  # noqa: BLE001  (no tokenizer.json on the hub or in the cache: the class below)
            file = None
    if file is None:
        cls = getattr(transformers, "XLMRobertaTokenizerFast", None) or transformers.XLMRobertaTokenizer
        return cls.from_pretrained(name)
    backend = Tokenizer.from_file(str(file))
    backend.no_padding()
    backend.no_truncation()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>",
                                                bos_token="<s>", eos_token="</s>")


def encoder_location(pretrained_model: str, model_dir: Path) -> str:
    """Where a checkpoint's `pretrained_model` is: a hub id, or a directory. A relative directory is looked for
    from here, then in the COMET model's folder (`encoder` beside hparams.yaml), then beside that folder (a
    checkpoint built with a relative `-o DIR` names `DIR/encoder`), so a local checkpoint scores from anywhere."""
    path = Path(pretrained_model).expanduser()
    if path.is_absolute() or path.is_dir():
        return pretrained_model
    for base in (model_dir, model_dir.parent):
        if (base / path).is_dir():
            return str((base / path).resolve())
    return pretrained_model  # a hub id (or a missing folder: loading it says so)


def build_random_comet(out_dir: str | Path, encoder_dir: str | Path, *, hidden_sizes=(16,), seed: int = 0,
                       layer_norm: bool = True, pool: str = "avg", layer_transformation: str = "softmax") -> Path:
    """A randomly initialised COMET regression model over the XLM-R config and tokenizer in `encoder_dir`, laid
    out as comet lays out a model (hparams.yaml with the RegressionMetric hyper-parameters comet writes,
    checkpoints/model.ckpt with a state dict comet's `load_from_checkpoint` reads too). Returns the checkpoint."""
    import torch  # lazy: torch
    import yaml  # lazy: yaml
    from transformers import XLMRobertaConfig  # lazy: transformers

    from aligninstruct_cli.metrics.comet_modules import CometRegression  # lazy: imports torch

    encoder_dir = Path(encoder_dir).resolve()  # hparams.yaml names it absolutely: comet's own loader reads it as is
    hp = CometHparams(pretrained_model=str(encoder_dir), hidden_sizes=tuple(hidden_sizes), layer_norm=layer_norm,
                      pool=pool, layer_transformation=layer_transformation)
    torch.manual_seed(seed)
    model = CometRegression(XLMRobertaConfig.from_pretrained(encoder_dir), hp)
    with torch.no_grad():  # comet initialises the mix at 0 (equal weights): spread them so that the mix matters
        for k, p in enumerate(model.layerwise_attention.scalar_parameters):
            p.fill_(0.1 * k)
    hparams = {  # RegressionMetric's arguments (comet 2.2.x), as its save_hyperparameters writes them
        "nr_frozen_epochs": 0, "keep_embeddings_frozen": True, "optimizer": "AdamW", "warmup_steps": 0,
        "encoder_learning_rate": 1.0e-06, "learning_rate": 1.5e-05, "layerwise_decay": 0.95,
        "encoder_model": SUPPORTED_ENCODER, "pretrained_model": str(encoder_dir), "pool": pool, "layer": "mix",
        "layer_transformation": layer_transformation, "layer_norm": layer_norm, "loss": "mse", "dropout": 0.1, "batch_size": 4,
        "train_data": [], "validation_data": [], "hidden_sizes": list(hidden_sizes), "activations": "Tanh",
        "final_activation": None, "load_pretrained_weights": False, "local_files_only": True,
        "class_identifier": SUPPORTED_CLASS,
    }
    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "hparams.yaml").write_text(yaml.safe_dump(hparams), encoding="utf-8")
    checkpoint = out / "checkpoints" / "model.ckpt"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    states = len(model.layerwise_attention.scalar_parameters)  # comet's training-only mix-dropout buffers
    state["layerwise_attention.dropout_mask"] = torch.zeros(states)
    state["layerwise_attention.dropout_fill"] = torch.full((states,), -1e20)
    torch.save({"state_dict": state, "hyper_parameters": hparams, "pytorch-lightning_version": "2.5.5"}, checkpoint)
    return checkpoint
