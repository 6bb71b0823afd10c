"""The ``train_viewneti`` job: fit the view and object mappers to one posed image set, with a frozen Stable Diffusion 2.x.

A posed set (:mod:`engine.viewneti.posed`) is a folder of images with ``cameras.json``.
Each optimizer step averages ``accumulation`` micro-batches of ``batch`` images,
each at a uniform random timestep: the UNet predicts the v target (or the
noise, by the scheduler's prediction type) with every cross-attention layer
reading its (timestep, layer, camera) tokens, and the MSE trains only the
mappers (AdamW, the original's settings: learning rate 1e-3 × batch ×
accumulation). The run is reproducible from its seed; the checkpoint holds the
optimizer moments and the random state, so a resumed run continues exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..choices import AUGMENTATIONS, CAMERA_PARAMETERISATIONS
from ..diffusion import sources
from ..errors import BadInput, JobCancelled
from ..imagefiles import NewFiles, check_writable
from ..progress import Reporter
from ..samples import json_file
from . import checkpoint
from .cameras import SIZES, SPHERICAL, CameraRanges
from .curve import write_loss_png
from .posed import read_posed_set

LOSS_CURVE, LOSS_PNG = "loss.json", "loss.png"


@dataclass
class TrainRequest:
    data_dir: str  # a posed set (cameras.json and its images)
    model: str  # Stable Diffusion 2.x (v-prediction): a folder or repo id
    out_dir: str  # the checkpoint folder
    parameterisation: str = SPHERICAL
    steps: int = 3000  # optimizer steps
    batch: int = 3
    accumulation: int = 3
    learning_rate: float = 1e-3  # per image: scaled by batch × accumulation, as the original
    alpha: float = 5.0
    augmentation: str = "STRONG"  # choices.AUGMENTATIONS; the original's set for one scene
    width: int = 512
    height: int = 384
    save_every: int = 500
    seed: int = 0
    resume: bool = False
    view_word: str = "view"
    object_word: str = "object"
    access: sources.ModelAccess = field(default_factory=sources.ModelAccess)
    overwrite: bool = False


@dataclass
class TrainResult:
    checkpoint: str = ""
    steps_done: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _check(r: TrainRequest) -> None:
    CAMERA_PARAMETERISATIONS.get(r.parameterisation)
    AUGMENTATIONS.get(r.augmentation)
    if r.steps < 1 or r.batch < 1 or r.accumulation < 1 or r.save_every < 1:
        raise BadInput("Steps, batch, accumulation and save interval must each be at least 1")
    if r.width % 64 or r.height % 64 or r.width < 64 or r.height < 64:
        raise BadInput(f"The training size must be multiples of 64, got {r.width}×{r.height}")
    if not r.learning_rate > 0 or r.alpha < 0:
        raise BadInput("The learning rate must be greater than 0 and alpha at least 0")


def check_base(folder: sources.ModelFolder) -> None:
    """ViewNeTI's base is Stable Diffusion 2.x: a v-prediction scheduler and a CLIP text encoder."""
    schedule = json.loads((folder.path / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    encoder = json.loads((folder.path / "text_encoder" / "config.json").read_text(encoding="utf-8"))
    if schedule.get("prediction_type") != "v_prediction":
        raise BadInput(
            f"{folder.name} predicts {schedule.get('prediction_type', 'epsilon')!r}: ViewNeTI's base is SD 2.x with v-prediction"
        )
    if encoder.get("model_type") not in ("clip_text_model", None) or folder.kind != sources.SD:
        raise BadInput(f"{folder.name} is not SD 2.x-shaped (one CLIP text encoder)")


def train_viewneti(r: TrainRequest, report: Reporter) -> TrainResult:
    started = time.perf_counter()
    _check(r)
    out = Path(r.out_dir)
    check_writable(out)
    images, numbers, centre = read_posed_set(Path(r.data_dir), r.parameterisation)
    if len(images) < 2:
        raise BadInput(f"Scene training needs at least 2 views; {r.data_dir} has {len(images)}")
    previous = checkpoint.load(out) if r.resume else None
    if not r.resume and (out / checkpoint.INFO).exists() and not r.overwrite:
        raise BadInput(f"{out} already holds a checkpoint (resume it, or enable overwrite)")
    access = r.access
    folder = sources.inspect_stable_diffusion(access.locate(r.model, report), r.model, access.allow_pickle)
    check_base(folder)
    report.total = r.steps + 2

    import torch

    from ..diffusion import loading
    from ..diffusion.viewneti import Mappers, layer_states
    from . import attention, text
    from .augment import NONE, augment
    from .mapper import Mapper, MapperSpec

    device = loading.pick_device(access.device)
    model = loading.load_stable_diffusion(folder, device, torch.float32)  # the original trains in fp32
    unet, vae, encoder = model.unet, model.vae, model.text_encoder
    if len(attention.install(unet)) != 16:
        raise BadInput(f"{folder.name} does not have SD 2.x's 16 cross-attention layers")
    width = encoder.config.hidden_size
    ranges = CameraRanges.fit(r.parameterisation, numbers)
    info = checkpoint.CheckpointInfo(
        cameras=ranges,
        word_dim=width,
        target=centre,
        width=r.width,
        height=r.height,
        view_word=r.view_word,
        object_word=r.object_word,
        view_norm=float(text.word_row(model.tokenizer, encoder, r.view_word).norm()),
        object_norm=float(text.word_row(model.tokenizer, encoder, r.object_word).norm()),
        alpha=r.alpha,
        base_model=r.model,
        base_revision=folder.revision,
        seed=r.seed,
    )
    mappers = Mappers(
        Mapper(MapperSpec(SIZES[r.parameterisation], width), seed=r.seed).to(device),
        Mapper(MapperSpec(0, width), seed=r.seed + 1).to(device),
        info.view_norm,
        info.object_norm,
        r.alpha,
    )
    params = [*mappers.view.parameters(), *mappers.object.parameters()]
    optimizer = torch.optim.AdamW(params, lr=r.learning_rate * r.batch * r.accumulation, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    generator = torch.Generator("cpu").manual_seed(r.seed)
    if previous is not None:
        old, view_state, object_state, state = previous
        if state is None:
            raise BadInput(f"The checkpoint in {out} has no training state to resume from")
        if old.cameras.kind != r.parameterisation:
            raise BadInput(f"The checkpoint in {out} reads {old.cameras.kind} cameras, not {r.parameterisation}")
        old.check_base(width, folder.revision, folder.name)
        mappers.view.load_state_dict(view_state)
        mappers.object.load_state_dict(object_state)
        _restore(optimizer, generator, state)
        info.steps_done, info.losses = old.steps_done, old.losses
        ranges = info.cameras = old.cameras
    report.step(f"Loaded {folder.name}")

    # The images, and without augmentation their latent distributions once (the VAE is frozen)
    pixels = torch.from_numpy(np.stack([_resized(im, r.width, r.height) for im in images])).permute(0, 3, 1, 2).to(device)
    fixed = None
    if r.augmentation == NONE:
        with torch.no_grad():
            posterior = vae.encode(pixels * 2 - 1).latent_dist
        fixed = posterior.mean, posterior.std

    def latent_sample(pick: torch.Tensor) -> torch.Tensor:
        """The picked images (augmented with this run's generator) as VAE latent samples, scaled."""
        if fixed is not None:
            mean, std = fixed[0][pick], fixed[1][pick]
        else:
            with torch.no_grad():
                posterior = vae.encode(augment(pixels[pick].cpu(), r.augmentation, generator).to(device) * 2 - 1).latent_dist
            mean, std = posterior.mean, posterior.std
        return (mean + std * torch.randn(mean.shape, generator=generator).to(device)) * vae.config.scaling_factor

    cameras = torch.from_numpy(ranges.normalise(numbers)).float()
    scheduler = loading_scheduler(model.scheduler_config)
    ids, positions = text.prompt_ids(model.tokenizer, f"{text.VIEW}. A photo of a {text.OBJECT}")
    ids = ids.to(device)
    report.step("Images encoded")

    saved = info.steps_done
    try:
        for step in range(info.steps_done, r.steps):
            total = 0.0
            for _ in range(r.accumulation):
                pick = torch.randint(0, len(images), (r.batch,), generator=generator)
                sample = latent_sample(pick)
                noise = torch.randn(sample.shape, generator=generator).to(device)
                t = torch.randint(0, scheduler.config.num_train_timesteps, (r.batch,), generator=generator).to(device)
                noisy = scheduler.add_noise(sample, noise, t)
                target = scheduler.get_velocity(sample, noise, t) if scheduler.config.prediction_type == "v_prediction" else noise
                states = layer_states(mappers, encoder, ids, positions, t, cameras[pick])
                placeholder = states.keys[0]  # read by no layer: each takes its own states
                prediction = unet(noisy, t, placeholder, cross_attention_kwargs={"viewneti": states}, return_dict=False)[0]
                loss = torch.nn.functional.mse_loss(prediction.float(), target.float()) / r.accumulation
                loss.backward()
                total += float(loss.detach())
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            info.losses.append(total)
            info.steps_done = step + 1
            if info.steps_done % r.save_every == 0 or info.steps_done == r.steps:
                _save(out, info, mappers, optimizer, generator)
                saved = info.steps_done
            report.step(f"Step {step + 1} of {r.steps}: loss {total:.4f}", done=step + 3)  # a resumed run's bar starts where it left off
    except JobCancelled:
        where = f"the checkpoint in {out} holds step {saved}" if saved else "no checkpoint was saved yet"
        raise JobCancelled(f"Training cancelled at step {info.steps_done}; {where}") from None
    return TrainResult(str(out), info.steps_done, info.losses, time.perf_counter() - started)


def loading_scheduler(config: dict[str, Any]) -> Any:
    """The training noise schedule: DDPM over the model's scheduler settings."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(config)


def _resized(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    from ..imagefiles import resize

    return rgb if rgb.shape[:2] == (height, width) else resize(rgb, width, height)


def _save(out: Path, info: checkpoint.CheckpointInfo, mappers: Any, optimizer: Any, generator: Any) -> None:
    import torch

    state: dict[str, Any] = {"generator": generator.get_state()}
    for index, moments in optimizer.state_dict()["state"].items():
        for name, value in moments.items():
            state[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu()
    checkpoint.save(out, info, mappers.view.state_dict(), mappers.object.state_dict(), state, overwrite=True)
    curve = [{"step": i + 1, "loss": loss} for i, loss in enumerate(info.losses)]
    with NewFiles([out / LOSS_CURVE, out / LOSS_PNG], overwrite=True) as files:
        files.write(out / LOSS_CURVE, json_file(curve))
        files.write(out / LOSS_PNG, lambda path: write_loss_png(path, info.losses))


def _restore(optimizer: Any, generator: Any, state: dict[str, Any]) -> None:
    saved = optimizer.state_dict()
    moments: dict[int, dict[str, Any]] = {}
    for key, value in state.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            moments.setdefault(int(index), {})[name] = value
    saved["state"] = moments
    optimizer.load_state_dict(saved)
    generator.set_state(state["generator"])
