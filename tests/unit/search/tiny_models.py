"""Tiny random ResNet and CLIP models saved like real ones (``save_pretrained``), offline.

CLIP needs a tokenizer: a character-level BPE vocabulary (letters and digits, with and
without the end-of-word mark, plus CLIP's two special tokens) and no merges, loaded by the
regular ``CLIPTokenizer`` and saved with the processor.
"""

from __future__ import annotations

import json
from pathlib import Path

from percept.search.embedders import CLIP_DIR, RESNET_DIR


def build_tiny_models(root: Path) -> Path:
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
        ConvNextImageProcessor,
        ResNetConfig,
        ResNetModel,
    )

    resnet = root / RESNET_DIR
    config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
    ResNetModel(config).save_pretrained(resnet)
    ConvNextImageProcessor(size={"shortest_edge": 64}, crop_pct=1.0).save_pretrained(resnet)

    clip = root / CLIP_DIR
    clip.mkdir(parents=True, exist_ok=True)
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({"<|startoftext|>": bos, "<|endoftext|>": eos})
    (clip / "vocab.json").write_text(json.dumps(vocab))
    (clip / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(clip / "vocab.json"), str(clip / "merges.txt"))
    text = {"vocab_size": len(vocab), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 32, "bos_token_id": bos,
            "eos_token_id": eos, "pad_token_id": eos}
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(clip)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    processor.save_pretrained(clip)
    return root
