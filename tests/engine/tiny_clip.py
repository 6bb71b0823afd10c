"""CLIP's real tokenizer and text encoders with its full vocabulary, for every tiny model that reads text.

Stable Diffusion 1.x and 2.x, SDXL, LDM3D, LDM3D-sr, ImageDream and MVDream
all tokenize with CLIP's byte-level BPE: 49,408 tokens (256 byte characters,
the same with the end-of-word mark, 48,894 merges, then ``<|startoftext|>``
49406 and ``<|endoftext|>`` 49407), and their text encoders' embedding tables
have exactly that many rows. The merges come from the file open_clip_torch
ships (``open_clip/bpe_simple_vocab_16e6.txt.gz``; the wheel is installed
without its dependencies and ``open_clip`` is never imported: its
``__init__`` needs torchvision). The tokenizer folder holds what the
published ones hold: ``vocab.json``, ``merges.txt``, ``tokenizer_config.json``
and ``special_tokens_map.json``, the special tokens (SD 2.x pads with ``!``,
SD 1.x with ``<|endoftext|>``) from the published configs kept in
``data/published/``. The vocabulary is built once per process.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PUBLISHED = Path(__file__).parent / "data" / "published"
VOCAB_SIZE = 49408
MERGES = VOCAB_SIZE - 2 * 256 - 2  # the BPE file holds more; CLIP uses its first 48,894 merges
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token")


@functools.cache
def published(model: str) -> dict[str, Any]:
    """A published model's configs, as kept in ``data/published/<model>.json`` (its ``_about`` says where they come from)."""
    return json.loads((PUBLISHED / f"{model}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def bpe_file() -> Path:
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in map(Path, locations):
        if (folder / BPE_FILE).is_file():
            return folder / BPE_FILE
    raise RuntimeError(
        f"CLIP's BPE merges ({BPE_FILE}) come from the open_clip_torch wheel: "
        "pip install --no-deps -r requirements-test-nodeps.txt into this Python"
    )


def byte_characters() -> list[str]:
    """The 256 printable characters byte-level BPE writes bytes as, in CLIP's order: the printable Latin-1 bytes stand for
    themselves, the other bytes (controls, space, …) in order for the code points from 256 up."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    moved = [b for b in range(256) if b not in kept]
    return [chr(b) for b in kept] + [chr(256 + i) for i in range(len(moved))]


@functools.cache
def clip_vocabulary() -> tuple[str, str]:
    """(vocab.json, merges.txt) as the published tokenizers hold them: token → id in CLIP's order, and the merges used."""
    lines = gzip.decompress(bpe_file().read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : 1 + MERGES]  # line 0 names the file
    characters = byte_characters()
    tokens = [*characters, *(c + "</w>" for c in characters), *(m.replace(" ", "") for m in merges), "<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) == len(set(tokens)) == VOCAB_SIZE
    vocab = json.dumps({token: i for i, token in enumerate(tokens)}, ensure_ascii=False)
    return vocab, "#version: 0.2\n" + "\n".join(merges) + "\n"


def write_clip_tokenizer(folder: Path, model: str, part: str = "tokenizer") -> None:
    """CLIP's tokenizer in the published layout, with the special tokens of ``model``'s ``part`` (tokenizer or tokenizer_2)."""
    facts = published(model)[part]
    vocab, merges = clip_vocabulary()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(vocab, encoding="utf-8")
    (folder / "merges.txt").write_text(merges, encoding="utf-8")
    config = {**facts, "tokenizer_class": "CLIPTokenizer", "add_prefix_space": False, "errors": "replace"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    special = {k: facts[k] for k in SPECIAL}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")


def clip_text_config(model: str, part: str = "text_encoder", **tiny: Any) -> Any:
    """``model``'s published text encoder config (vocabulary, special ids, activation, positions) at the ``tiny`` sizes."""
    from transformers import CLIPTextConfig

    kept = ("vocab_size", "bos_token_id", "eos_token_id", "pad_token_id", "hidden_act", "max_position_embeddings", "layer_norm_eps")
    facts = published(model)[part]
    return CLIPTextConfig(**{k: facts[k] for k in kept if k in facts}, **tiny)


@contextlib.contextmanager
def embedding_lookups() -> Iterator[list[tuple[int, set[int]]]]:
    """Every embedding lookup while open, as (the table's rows, the ids read): which vocabulary a job's text went through."""
    import torch

    seen: list[tuple[int, set[int]]] = []
    original = torch.nn.functional.embedding

    def spy(ids: Any, weight: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((int(weight.shape[0]), set(ids.flatten().tolist())))
        return original(ids, weight, *args, **kwargs)

    torch.nn.functional.embedding = spy
    try:
        yield seen
    finally:
        torch.nn.functional.embedding = original


def read_clip_words(seen: list[tuple[int, set[int]]], *words: str) -> bool:
    """Whether a table of CLIP's 49,408 rows was read with the start and end ids and each word's id in CLIP's vocabulary."""
    vocab = json.loads(clip_vocabulary()[0])
    wanted = {vocab["<|startoftext|>"], vocab["<|endoftext|>"], *(vocab[w + "</w>"] for w in words)}
    return any(rows == VOCAB_SIZE and wanted <= ids for rows, ids in seen)
