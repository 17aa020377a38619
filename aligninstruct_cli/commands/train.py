"""`ait train`: LoRA (or full) fine-tuning over a curriculum, launched through DeepSpeed, resumable."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.training import config as C

PANEL_LAUNCH = "Launch (DeepSpeed)"
PANEL_MODEL = "Model and LoRA"
PANEL_RUN = "Checkpoints and logging"


def train(
    model: Annotated[str, typer.Option("--model", "-m", help="Base causal LM: a local directory or a Hugging "
                                       "Face hub id.")],
    data: Annotated[List[str], typer.Option("--data", help="NAME=PATH of a JSONL file of instruction records "
                                            "(from `ait build`/`ait mix`); repeatable. NAME is used in "
                                            "--curriculum.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Run directory: stage-K-*/, final/, run.json, "
                                        "metrics.jsonl, checkpoints/.")],
    curriculum: Annotated[Optional[str], typer.Option(
        "--curriculum", help="Stages separated by ',', data names inside a stage joined by '+', e.g. "
        "mt+align,mt. Stage k starts from stage k-1's adapter. Default: one stage over every --data.")] = None,
    val: Annotated[Optional[str], typer.Option("--val", help="Instruction records for the validation loss "
                                               "(after every epoch; chooses among several --lr).")] = None,
    lr: Annotated[str, typer.Option("--lr", help="Peak learning rate; several comma-separated values train "
                                    "one run each and keep the lowest final validation loss.")] = f"{C.LEARNING_RATE:g}",
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs per stage (paper: 5).")] = C.EPOCHS,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Records per device per micro-step (paper: 8 "
                                            "for bloomz-3b/1b1, 4 for 7b1).")] = C.BATCH_SIZE,
    grad_accum: Annotated[int, typer.Option("--grad-accum", help="Micro-steps per optimizer step.")] = C.GRAD_ACCUM,
    max_length: Annotated[int, typer.Option("--max-length", help="Longest example in tokens, input + output + "
                                            "EOS (paper: 384).")] = C.MAX_LENGTH,
    too_long: Annotated[str, typer.Option("--too-long", help="A record over --max-length: error (stop before "
                                          "launch), skip (drop, counted) or truncate (cut the end, counted).")] = "error",
    seed: Annotated[int, typer.Option("--seed", help="Seed of data order, LoRA initialisation and dropout.")] = 0,
    warmup_ratio: Annotated[float, typer.Option("--warmup-ratio", help="Share of steps for linear warm-up "
                                                "(paper: 0.03); then linear decay to 0.")] = C.WARMUP_RATIO,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.")] = C.WEIGHT_DECAY,
    grad_clip: Annotated[float, typer.Option("--grad-clip", help="Gradient norm clipping (0: none).")] = C.GRAD_CLIP,
    precision: Annotated[str, typer.Option("--precision", help="auto (bf16 where supported, else fp16 on GPU, "
                                           "fp32 on CPU), bf16, fp16 or fp32.")] = "auto",
    full: Annotated[bool, typer.Option("--full", help="Train every weight instead of LoRA (e.g. to build a base "
                                       "model); stages save full model directories.",
                                       rich_help_panel=PANEL_MODEL)] = False,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank (paper: 8).", rich_help_panel=PANEL_MODEL)] = C.LORA_R,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", help="LoRA alpha (paper: 32).",
                                            rich_help_panel=PANEL_MODEL)] = C.LORA_ALPHA,
    lora_dropout: Annotated[float, typer.Option("--lora-dropout", help="LoRA dropout (paper: 0.1).",
                                                rich_help_panel=PANEL_MODEL)] = C.LORA_DROPOUT,
    lora_targets: Annotated[Optional[str], typer.Option(
        "--lora-targets", help="Comma-separated module names for LoRA; default per architecture (BLOOM: "
        "query_key_value).", rich_help_panel=PANEL_MODEL)] = None,
    gradient_checkpointing: Annotated[bool, typer.Option(
        "--gradient-checkpointing", help="Recompute activations in the backward pass (less memory, ~30% "
        "slower).", rich_help_panel=PANEL_MODEL)] = False,
    compile_blocks: Annotated[str, typer.Option(
        "--compile", help="torch.compile each decoder block: auto (on a GPU, unless --zero 3 or "
        "--gradient-checkpointing; falls back to eager if compiling fails), on, or off. Costs up to a minute "
        "at the start of a stage; made LoRA steps 1.5-1.8x faster on an H100.",
        rich_help_panel=PANEL_MODEL)] = "auto",
    launcher: Annotated[str, typer.Option("--launcher", help="deepspeed: start workers with the deepspeed "
                                          "launcher; none: train in this process on one device.",
                                          rich_help_panel=PANEL_LAUNCH)] = "deepspeed",
    num_gpus: Annotated[Optional[int], typer.Option("--num-gpus", help="Ranks per node (GPUs; CPU processes "
                                                    "on a CPU machine). Default: all GPUs.",
                                                    rich_help_panel=PANEL_LAUNCH)] = None,
    num_nodes: Annotated[Optional[int], typer.Option("--num-nodes", help="Nodes to use from the hostfile.",
                                                     rich_help_panel=PANEL_LAUNCH)] = None,
    hostfile: Annotated[Optional[str], typer.Option("--hostfile", help="DeepSpeed/MPI hostfile ('host "
                                                    "slots=N' lines) for multi-node runs.",
                                                    rich_help_panel=PANEL_LAUNCH)] = None,
    master_port: Annotated[Optional[int], typer.Option("--master-port", help="Port of the rank-0 rendezvous.",
                                                       rich_help_panel=PANEL_LAUNCH)] = None,
    zero: Annotated[Optional[int], typer.Option(
        "--zero", help="ZeRO stage 0-3 (3 partitions the weights too). Default: 2; 0 for a single rank "
        "(--launcher none or --num-gpus 1 on one node: nothing to partition).",
        rich_help_panel=PANEL_LAUNCH)] = None,
    offload: Annotated[str, typer.Option("--offload", help="none, optimizer (optimizer state in CPU memory) or "
                                         "all (also weights; needs --zero 3).",
                                         rich_help_panel=PANEL_LAUNCH)] = "none",
    deepspeed_config: Annotated[Optional[str], typer.Option(
        "--deepspeed-config", help="A DeepSpeed JSON config used instead of the generated one (\"auto\" "
        "values are filled from the options).", rich_help_panel=PANEL_LAUNCH)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the launch command and the DeepSpeed config, "
                                          "then exit.", rich_help_panel=PANEL_LAUNCH)] = False,
    save_every: Annotated[int, typer.Option("--save-every", help="Checkpoint every N optimizer steps for "
                                            "--resume (0: only finished stages).", rich_help_panel=PANEL_RUN)] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output from its last "
                                         "checkpoint (the options must be the same).",
                                         rich_help_panel=PANEL_RUN)] = False,
    cache_dir: Annotated[Optional[str], typer.Option("--cache-dir", help="Tokenized-data cache (default "
                                                     "$XDG_CACHE_HOME/ait/tokenized or ~/.cache/ait/tokenized).",
                                                     rich_help_panel=PANEL_RUN)] = None,
    log_every: Annotated[int, typer.Option("--log-every", help="Write a metrics.jsonl line every N steps.",
                                           rich_help_panel=PANEL_RUN)] = C.LOG_EVERY,
    log_data_ids: Annotated[bool, typer.Option("--log-data-ids", help="Write the record ids of every step to "
                                               "data_ids.jsonl (audits order and resume).",
                                               rich_help_panel=PANEL_RUN)] = False,
) -> None:
    """Fine-tune a causal LM on instruction records over a curriculum (LoRA by default, as in the paper),
    through the deepspeed launcher; resumable. Writes OUTPUT/stage-K-*/ and OUTPUT/final/ (PEFT adapters),
    run.json and metrics.jsonl. See docs/train.md.

    Example: ait train -m bigscience/bloomz-560m --data mt=mt.jsonl --data align=align.jsonl --curriculum mt+align,mt --val val.jsonl -o runs/x
    """
    from aligninstruct_cli.training.launch import LaunchOptions, run

    data_map = C.parse_data_specs(data)
    cfg = C.TrainConfig(
        model=model, data=data_map, curriculum=C.parse_curriculum(curriculum, list(data_map)), output=output,
        val=val, lrs=C.parse_lrs(lr), epochs=epochs, batch_size=batch_size, grad_accum=grad_accum,
        max_length=max_length, seed=seed, full=full, lora_r=lora_r, lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        lora_targets=[t.strip() for t in lora_targets.split(",") if t.strip()] if lora_targets else None,
        warmup_ratio=warmup_ratio, weight_decay=weight_decay, grad_clip=grad_clip, precision=precision,
        too_long=too_long, gradient_checkpointing=gradient_checkpointing, compile=compile_blocks, zero=C.default_zero(zero, launcher, num_gpus, num_nodes, hostfile, offload), offload=offload,
        save_every=save_every, log_every=log_every, log_data_ids=log_data_ids)
    opts = LaunchOptions(launcher=launcher, num_gpus=num_gpus, num_nodes=num_nodes, hostfile=hostfile,
                         master_port=master_port, deepspeed_config=deepspeed_config, dry_run=dry_run,
                         resume=resume, cache_dir=cache_dir, quiet=console.is_quiet())
    code = run(cfg, opts, list(sys.argv))
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
