"""ViewNeTI's engine on a tiny random-weight Stable Diffusion 2.x (v-prediction) in its published layout.

Random weights give noise, so these tests check equivalences and invariants:
the mappers' exact shape and Fourier matrix, the text path against the text
encoder's own forward, ViewNeTI at α = 0 with the mapper words forced to real
words against diffusers' ``StableDiffusionPipeline`` given those words, keys
unchanged and values changed by the bypass, and the 16 layers' indices.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tiny_viewneti import build_tiny_sd2  # noqa: E402

from engine.diffusion import loading, sources  # noqa: E402
from engine.progress import CancelToken, Reporter  # noqa: E402
from engine.viewneti import (  # noqa: E402
    attention,
    pipeline,
    text,
)
from engine.viewneti.mapper import LAYERS, Mapper, MapperSpec, fourier_matrix  # noqa: E402

pytestmark = pytest.mark.timeout(300)
CPU = torch.device("cpu")
VIEW_WORD, OBJECT_WORD = "view", "object"  # single tokens of CLIP's vocabulary: ViewNeTI's reference words


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = build_tiny_sd2(tmp_path_factory.mktemp("models") / "tiny-sd2")
    return loading.load_stable_diffusion(sources.inspect_stable_diffusion(folder), CPU, torch.float32)


def quiet() -> Reporter:
    return Reporter(lambda p: None, CancelToken(), 1)


def test_the_fourier_matrix_is_seed_0s_whatever_the_global_seed():
    torch.manual_seed(123)
    w = fourier_matrix([1.0] * 14)
    np.testing.assert_allclose(w[0, :4].numpy(), [-1.1258, -1.1524, -0.2506, -0.4339], atol=1e-4)
    scaled = fourier_matrix([0.03, 2.0] + [0.5] * 12)
    torch.testing.assert_close(scaled, w * torch.tensor([0.03, 2.0] + [0.5] * 12))


def test_a_mapper_has_the_originals_names_shapes_and_141696_parameters():
    mapper = Mapper(MapperSpec(camera_inputs=12, word_dim=1024))
    shapes = {k: tuple(v.shape) for k, v in mapper.state_dict().items()}
    assert shapes == {
        "net.0.weight": (64, 64),
        "net.0.bias": (64,),
        "net.1.weight": (64,),
        "net.1.bias": (64,),
        "net.3.weight": (64, 64),
        "net.3.bias": (64,),
        "net.4.weight": (64,),
        "net.4.bias": (64,),
        "output_layer.0.weight": (2048, 64),
        "output_layer.0.bias": (2048,),
    }, "W is rebuilt from its seed, not stored"
    assert sum(v.numel() for v in mapper.state_dict().values()) == 141_696
    same = Mapper(MapperSpec(12, 1024), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(mapper.state_dict().values(), same.state_dict().values()))


def test_the_text_path_equals_the_text_encoders_own_forward(model):
    ids, positions = text.prompt_ids(model.tokenizer, pipeline.TEMPLATE)
    row_v = text.word_row(model.tokenizer, model.text_encoder, VIEW_WORD)
    row_o = text.word_row(model.tokenizer, model.text_encoder, OBJECT_WORD)
    slots = [
        text.Slot(positions[text.VIEW], row_v[None], torch.ones(1, 32)),
        text.Slot(positions[text.OBJECT], row_o[None], torch.ones(1, 32)),
    ]
    with torch.inference_mode():
        ours = text.encode(model.text_encoder, ids, slots, alpha=0.0).plain
        words = model.tokenizer(f"{VIEW_WORD}. A photo of a {OBJECT_WORD}", padding="max_length", max_length=77, return_tensors="pt")
        theirs = model.text_encoder(words.input_ids)[0]
    assert torch.equal(ids[positions[text.OBJECT] + 1 :], words.input_ids[0][positions[text.OBJECT] + 1 :])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def forced(word_dim: int, word: torch.Tensor, camera_inputs: int) -> Mapper:
    """A mapper whose word is always ``word`` (direction) and whose bypass is a fixed random vector."""
    mapper = Mapper(MapperSpec(camera_inputs, word_dim))
    with torch.no_grad():
        mapper.output_layer[0].weight.zero_()
        mapper.output_layer[0].bias.copy_(torch.cat([word * 3.0, torch.randn(word_dim, generator=torch.Generator().manual_seed(1))]))
    return mapper


def mappers_as_words(model, alpha):
    row_v = text.word_row(model.tokenizer, model.text_encoder, VIEW_WORD)
    row_o = text.word_row(model.tokenizer, model.text_encoder, OBJECT_WORD)
    return pipeline.Mappers(forced(32, row_v, 3), forced(32, row_o, 0), float(row_v.norm()), float(row_o.norm()), alpha=alpha)


def test_at_alpha_0_with_the_words_forced_it_is_stable_diffusion_given_those_words(model):
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from diffusers.models.attention_processor import AttnProcessor2_0

    settings = pipeline.NovelViewSettings(camera=torch.tensor([0.1, -0.3, 0.5]), seeds=[5], width=64, height=64, steps=3, scheduler="DDIM")
    ours = pipeline.generate(model, mappers_as_words(model, alpha=0.0), settings, quiet())
    sd = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        unet=model.unet,
        scheduler=DDIMScheduler.from_config(model.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    sd.set_progress_bar_config(disable=True)
    model.unet.set_attn_processor(AttnProcessor2_0())  # diffusers' own processors for diffusers' own pipeline
    theirs = sd(
        f"{VIEW_WORD}. A photo of a {OBJECT_WORD}",
        width=64,
        height=64,
        num_inference_steps=3,
        guidance_scale=7.5,
        generator=torch.Generator("cpu").manual_seed(5),
        output_type="np",
    ).images
    assert ours.shape == theirs.shape == (1, 64, 64, 3)
    np.testing.assert_allclose(ours, theirs, atol=5e-5)  # float rounding: the 16 layers read their states through our processors


def test_with_alpha_above_0_the_keys_are_the_plain_states_and_only_the_values_change(model):
    ids, positions = text.prompt_ids(model.tokenizer, pipeline.TEMPLATE)
    camera = torch.tensor([0.2, 0.0, -0.4])
    with torch.inference_mode():
        t = torch.tensor([500])
        plain = pipeline.layer_states(mappers_as_words(model, alpha=0.0), model.text_encoder, ids, positions, t, camera[None])
        bypassed = pipeline.layer_states(mappers_as_words(model, alpha=5.0), model.text_encoder, ids, positions, t, camera[None])
    torch.testing.assert_close(bypassed.keys, plain.keys)
    changed = (bypassed.values - plain.values).abs().amax(dim=(0, 1, 3)) > 1e-4
    assert changed[positions[text.VIEW]] and changed[positions[text.OBJECT]]
    assert changed.sum() == 2, "the bypass touches only the two placeholder positions"
    layer = model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2
    attention.install(model.unet)
    seen = {}
    for name in ("to_k", "to_v"):
        getattr(layer, name).register_forward_hook(lambda m, args, out, name=name: seen.setdefault(name, args[0].clone()))
    with torch.inference_mode():
        layer.processor(layer, torch.randn(1, 16, 32), viewneti=bypassed)
    torch.testing.assert_close(seen["to_k"], bypassed.keys[0])
    torch.testing.assert_close(seen["to_v"], bypassed.values[0])


def test_the_16_layers_get_16_different_indices_in_the_unets_call_order(model):
    names = attention.install(model.unet)
    assert len(names) == LAYERS
    called = []
    hooks = []
    for name, module in model.unet.named_modules():
        if name.endswith("attn2"):
            hooks.append(module.register_forward_pre_hook(lambda m, args, kwargs, name=name: called.append(name), with_kwargs=True))
    try:
        with torch.inference_mode():
            model.unet(torch.randn(1, 4, 16, 16), 10, torch.randn(1, 77, 32))
    finally:
        for hook in hooks:
            hook.remove()
    assert [n + ".processor" for n in called] == names
    indices = [model.unet.attn_processors[n].layer for n in names]
    assert indices == list(range(LAYERS))
