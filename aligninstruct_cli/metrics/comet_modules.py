"""The torch modules of a COMET regression model (unbabel-comet's `RegressionMetric`: the encoder, the layer mix
and the estimator, under comet's parameter names), for `metrics/comet_model.py`, which imports this module only
when it builds a model (torch stays out of CLI start-up)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import XLMRobertaModel

from aligninstruct_cli.errors import AitError


def sparsemax(x):
    """Sparsemax over the last dimension, computed as the entmax package does (which comet uses)."""
    x = x - x.max(dim=-1, keepdim=True).values
    ordered, _ = torch.sort(x, dim=-1, descending=True)
    cumsum = ordered.cumsum(-1) - 1
    rhos = torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype)
    support = (rhos * ordered > cumsum).sum(dim=-1, keepdim=True)
    tau = cumsum.gather(-1, support - 1) / support.to(x.dtype)
    return torch.clamp(x - tau, min=0)


class LayerMix(nn.Module):
    """comet's LayerwiseAttention in eval mode: gamma * sum(w_k * h_k), w = softmax/sparsemax(scalars)."""

    def __init__(self, num_layers: int, layer_norm: bool, transformation: str):
        super().__init__()
        self.layer_norm, self.transformation = layer_norm, transformation
        self.scalar_parameters = nn.ParameterList([nn.Parameter(torch.zeros(1)) for _ in range(num_layers)])
        self.gamma = nn.Parameter(torch.ones(1))

    def forward(self, tensors, mask):
        weights = torch.cat(list(self.scalar_parameters))
        weights = sparsemax(weights) if self.transformation == "sparsemax" else torch.softmax(weights, dim=0)
        weights = torch.split(weights, 1)
        if not self.layer_norm:
            return self.gamma * sum(w * t for w, t in zip(weights, tensors))
        mask_float = mask.float()
        broadcast = mask_float.unsqueeze(-1)
        return self.gamma * sum(w * self._normalised(t, broadcast, mask_float) for w, t in zip(weights, tensors))

    @staticmethod
    def _normalised(tensor, broadcast_mask, mask):
        batch, _, dim = tensor.size()
        masked = tensor * broadcast_mask
        count = mask.sum(1) * dim
        mean = (masked.view(batch, -1).sum(1) / count).view(batch, 1, 1)
        variance = (((masked - mean) * broadcast_mask) ** 2).view(batch, -1).sum(1) / count
        return (tensor - mean) / torch.sqrt(variance + 1e-12).view(batch, 1, 1)

class Estimator(nn.Module):
    """comet's FeedForward: Linear, activation, Dropout per hidden size, then Linear to 1 (and the final
    activation if any)."""

    def __init__(self, in_dim: int, hidden_sizes, activation: str, final_activation: str | None):
        super().__init__()
        layers: list[nn.Module] = []
        sizes = [in_dim, *hidden_sizes]
        for before, after in zip(sizes, sizes[1:]):  # dropout kept so that the indices are comet's
            layers += [nn.Linear(before, after), getattr(nn, activation.title())(), nn.Dropout(0.0)]
        layers.append(nn.Linear(sizes[-1], 1))
        if final_activation is not None:
            layers.append(getattr(nn, str(final_activation).title())())
        self.ff = nn.Sequential(*layers)

    def forward(self, features):
        return self.ff(features)

class CometRegression(nn.Module):
    """comet's RegressionMetric in eval mode, under the same parameter names; `hp`: a `comet_model.CometHparams`."""

    def __init__(self, encoder_config, hp: Any):
        super().__init__()
        self.hp = hp
        self.encoder = nn.Module()
        self.encoder.model = XLMRobertaModel(encoder_config, add_pooling_layer=False)
        states = encoder_config.num_hidden_layers + 1  # the embeddings and every layer
        if hp.layer != "mix" and hp.layer >= states:
            raise AitError(f"COMET layer {hp.layer}: the encoder has {states} hidden states")
        self.layerwise_attention = (LayerMix(states, hp.layer_norm, hp.mix_transformation)
                                    if hp.layer == "mix" else None)
        self.estimator = Estimator(encoder_config.hidden_size * 6, hp.hidden_sizes, hp.activations,
                                   hp.final_activation)

    def embed(self, input_ids, attention_mask, pad_id: int):
        out = self.encoder.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        layers = out.hidden_states
        if self.layerwise_attention is not None:
            embeddings = self.layerwise_attention(layers, attention_mask)
        else:
            embeddings = layers[self.hp.layer]
        pool = self.hp.pool
        if pool == "default":
            return out.last_hidden_state[:, 0, :]
        if pool == "cls":
            return embeddings[:, 0, :]
        padding = input_ids.eq(pad_id).unsqueeze(-1)
        if pool == "max":
            return embeddings.float().masked_fill(padding, float("-inf")).type_as(embeddings).max(dim=1)[0]
        summed = torch.sum(embeddings.float().masked_fill(padding, 0.0).type_as(embeddings), 1)
        return summed / attention_mask.unsqueeze(-1).expand(embeddings.size()).float().sum(1)

    def forward(self, src, mt, ref, pad_id: int):
        src_emb, ref_emb, mt_emb = (self.embed(*src, pad_id), self.embed(*ref, pad_id),
                                    self.embed(*mt, pad_id))
        features = torch.cat((mt_emb, ref_emb, mt_emb * ref_emb, torch.abs(mt_emb - ref_emb),
                              mt_emb * src_emb, torch.abs(mt_emb - src_emb)), dim=1)
        return self.estimator(features).view(-1)
