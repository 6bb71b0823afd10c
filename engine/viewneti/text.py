"""The text encoder with mapper tokens: embeddings → encoder → bypass → final layer norm, many passes in one batch.

transformers 5's ``CLIPTextModel`` takes only token ids, so the steps are
written out: the prompt's token embeddings, with the mapper words written at
the placeholders' positions; position embeddings; the causal encoder; then, at
each placeholder, the bypass h + α·‖h‖·b/‖b‖ before the final layer norm. The
plain states (no bypass) feed cross-attention's keys, the bypassed ones its
values. One call encodes a batch of passes (the 16 layers of a step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import BadInput

VIEW, OBJECT = "<view>", "<object>"  # the placeholders in a prompt template


@dataclass
class Slot:
    """One placeholder's position in the prompt, and what the mapper writes there for each pass."""

    position: int
    words: torch.Tensor  # [passes, width]
    bypass: torch.Tensor  # [passes, width]


@dataclass
class TextStates:
    plain: torch.Tensor  # [passes, tokens, width]: cross-attention keys
    bypassed: torch.Tensor  # [passes, tokens, width]: cross-attention values


def prompt_ids(tokenizer: Any, template: str, placeholders: Sequence[str] = (VIEW, OBJECT)) -> tuple[torch.Tensor, dict[str, int]]:
    """The template's token ids (padded to the model's length) and each placeholder's position.

    Placeholders are added to (a copy of) the vocabulary as whole tokens, so the
    template splits around them. Their new ids lie past the text encoder's table
    (SD 2.x: 49,408 tokens, 49,408 rows), so each is replaced by the tokenizer's
    unknown token, a row inside it; that row is never read: the mapper's word
    takes its place (:func:`encode`).
    """
    import copy

    local = copy.deepcopy(tokenizer)
    local.add_tokens(list(placeholders))
    ids = local(template, padding="max_length", max_length=local.model_max_length, truncation=True, return_tensors="pt").input_ids[0]
    positions: dict[str, int] = {}
    for name in placeholders:
        found = (ids == local.convert_tokens_to_ids(name)).nonzero().flatten().tolist()
        if len(found) != 1:
            raise BadInput(f"The prompt must hold {name} exactly once, got {template!r}")
        positions[name] = int(found[0])
    ids[list(positions.values())] = tokenizer.unk_token_id
    return ids, positions


def word_row(tokenizer: Any, text_encoder: Any, word: str) -> torch.Tensor:
    """The token-embedding row of a single-token word (a mapper word's norm, an object token's start)."""
    ids = tokenizer(word, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise BadInput(f"{word!r} is not one token of this model's tokenizer ({len(ids)} tokens): choose another reference word")
    return text_encoder.embeddings.token_embedding.weight[ids[0]].detach()  # type: ignore[no-any-return]


def encode(text_encoder: Any, ids: torch.Tensor, slots: Sequence[Slot], alpha: float) -> TextStates:
    """Encode ``ids`` once per pass, each pass with its own slot words and bypass vectors."""
    from transformers.masking_utils import create_causal_mask

    model = text_encoder
    passes = slots[0].words.shape[0] if slots else 1
    batch = ids.to(model.device)[None].expand(passes, -1)
    tokens = model.embeddings.token_embedding(batch).clone()
    for slot in slots:
        tokens[:, slot.position] = slot.words.to(tokens.dtype)
    hidden = model.embeddings(inputs_embeds=tokens)
    mask = create_causal_mask(config=model.config, inputs_embeds=hidden, attention_mask=None, past_key_values=None)
    states = model.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
    plain = model.final_layer_norm(states)
    if alpha == 0 or not slots:
        return TextStates(plain, plain)
    bypassed = states.clone()
    for slot in slots:
        h = states[:, slot.position]
        b = slot.bypass.to(h.dtype)
        bypassed[:, slot.position] = h + alpha * h.norm(dim=-1, keepdim=True) * b / b.norm(dim=-1, keepdim=True)
    return TextStates(plain, model.final_layer_norm(bypassed))
