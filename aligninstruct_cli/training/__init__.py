"""Training: LoRA fine-tuning over curricula with DeepSpeed (see docs/train.md)."""
