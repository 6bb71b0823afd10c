"""3D-DST's text prompts: the class name, the CAD model's tags, and text that varies per image.

3D-DST prompts "An image of {class}, {added prompt}" and, in the paper, adds
the CAD model's tags and a language model's completion for diversity. Here the
completion is a hook: a local causal language model when one is configured
(a transformers folder, safetensors unless pickles are allowed), otherwise a
template expansion from the tags. Both are seeded, so a prompt list is
reproducible; the template needs nothing but the standard library.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: 3D-DST's quality words, appended to every prompt, and their negative prompt.
ADDED_PROMPT = "best quality, extremely detailed"
NEGATIVE_PROMPT = (
    "longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, cropped, worst quality, low quality"
)

#: (class name, tags, seed) → a description that starts "An image of ..."
Expander = Callable[[str, Sequence[str], int], str]

_SETTINGS = (
    "on a city street",
    "in a living room",
    "in a field",
    "on a wooden table",
    "in a studio",
    "by the sea",
    "in a forest",
    "in a workshop",
    "on a snowy road",
    "in a museum",
)
_LIGHT = ("in soft morning light", "at golden hour", "under overcast skies", "in bright daylight", "under warm indoor light", "at dusk")
_SHOTS = ("a photo", "a close-up photo", "a documentary photo", "a high-resolution photo")


def _join(*parts: str) -> str:
    return ", ".join(p.strip() for p in parts if p and p.strip())


def template_expansion(class_name: str, tags: Sequence[str], seed: int) -> str:
    """A varied but reproducible description: some of the tags in a seeded order, a setting and a light."""
    rng = random.Random(int(seed))
    picked = list(tags)
    rng.shuffle(picked)
    picked = picked[: rng.randint(min(1, len(picked)), min(3, len(picked)))]
    shot, setting, light = rng.choice(_SHOTS), rng.choice(_SETTINGS), rng.choice(_LIGHT)
    return _join(f"An image of {class_name.strip()}", *picked, f"{shot} {setting} {light}")


def expand_prompt(
    class_name: str,
    tags: Sequence[str],
    seed: int,
    expander: Expander | None = None,
    style: Sequence[str] = (),
    added: str = ADDED_PROMPT,
) -> str:
    """The description from ``expander`` (default: the template), then the style words and the added prompt."""
    description = (expander or template_expansion)(class_name, tags, seed)
    return _join(description, *style, added)


class LocalLanguageModel:
    """A local causal language model that completes "An image of {class}, ..." into one sentence.

    Sampling is seeded per call (the global random state is left as it was), so the same seed gives
    the same text on the same machine.
    """

    def __init__(self, folder: str, allow_pickle: bool = False, max_new_tokens: int = 40) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..diffusion.loading import from_pretrained
        from ..diffusion.sources import inspect_transformers_model

        path = Path(folder).expanduser()
        safe = inspect_transformers_model(path, folder, None, allow_pickle)
        self.tokenizer: Any = from_pretrained(AutoTokenizer.from_pretrained, path, folder)
        self.model: Any = from_pretrained(AutoModelForCausalLM.from_pretrained, path, folder, use_safetensors=safe).eval()
        self.max_new_tokens = max_new_tokens

    def __call__(self, class_name: str, tags: Sequence[str], seed: int) -> str:
        import torch

        start = f"An image of {class_name.strip()}" + (f" ({', '.join(tags)})" if tags else "") + ","
        ids = self.tokenizer(start, return_tensors="pt").input_ids
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(int(seed))
            out = self.model.generate(
                ids,
                do_sample=True,
                top_p=0.9,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self.tokenizer.eos_token_id or 0,
            )
        completion = self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        sentence = completion.replace("\n", " ").split(".")[0].strip(" ,")
        return _join(f"An image of {class_name.strip()}", *tags, sentence)
