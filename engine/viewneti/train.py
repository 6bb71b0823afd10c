"""The ``train_viewneti`` job: fit ViewNeTI's mappers to posed image sets, with a frozen Stable Diffusion 2.x.

Three modes (``choices.TRAINING_MODES``), as the original's learnable modes 2, 3 and 5:

* ``SCENE``: a view and an object mapper together, on one posed set of 2 views or more;
* ``PRETRAIN``: one shared view mapper and one object mapper per posed set, over
  several sets; each micro-batch comes from one set drawn at random;
* ``SINGLE_VIEW``: a pre-trained checkpoint's view mapper kept frozen (with its
  camera ranges, training size, reference word and α), and a new object mapper
  fitted to one image (or a few) and its camera.

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

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..choices import AUGMENTATIONS, CAMERA_PARAMETERISATIONS, TRAINING_MODES
from ..diffusion import sources
from ..errors import KEPT, BadInput, JobCancelled
from ..imagefiles import NewFiles, check_writable, recorded_path
from ..params import (
    INPUT_FOLDER,
    PIXELS,
    Inspect,
    Note,
    leaves,
    model_field,
    nested,
    output_folder_field,
    overwrite_field,
    param,
    refuse,
    seed_field,
)
from ..progress import Reporter
from ..samples import json_file
from . import checkpoint
from .cameras import SIZES, SPHERICAL, CameraRanges, at_size
from .curve import write_loss_png
from .posed import read_posed_set

LOSS_CURVE, LOSS_PNG = "loss.json", "loss.png"
SCENE, PRETRAIN, SINGLE_VIEW = TRAINING_MODES.ids


def base_model_field(help: str = "The Stable Diffusion 2.x base (v-prediction)") -> Any:
    return model_field(checkpoint.BASE_MODEL, "Base Model", help)


def size_fields(default: tuple[int, int], help: str, multiple: int, largest: int, why: str, **how: Any) -> tuple[Any, Any]:
    """An image size as ``--size W H`` (``width`` and ``height``)."""
    width = param(
        default[0],
        "Width",
        help,
        unit=PIXELS,
        min=64,
        max=largest,
        multiple=multiple,
        why=why,
        cli="--size",
        cli_fields=("width", "height"),
        **how,
    )
    return width, param(default[1], "Height", help, unit=PIXELS, min=64, max=largest, multiple=multiple, why=why, **how)


TRAINING_WIDTH, TRAINING_HEIGHT = size_fields(
    (512, 384), "The training size", 64, 1024, "the UNet works in 64-pixel blocks; SD 2.x up to 1024"
)


@dataclass
class TrainRequest:
    data_dirs: list[str] = param(
        [],
        "Training Views",
        "Posed image sets (Render Training Views / viewneti-data): one, or several to pre-train (Blender: a folder of them)",
        path=INPUT_FOLDER,
        cli="--data",
        cli_required=True,
        prop="data_dir",
    )
    model: str = base_model_field()
    out_dir: str = output_folder_field("The checkpoint folder; empty: a new one", label="Checkpoint")
    mode: str = param(SCENE, "Mode", "What is trained", choices=TRAINING_MODES)
    view_mapper: str = param("", "Pre-trained", "Single view: the pre-trained checkpoint whose view mapper stays frozen", path=INPUT_FOLDER)
    parameterisation: str = param(
        SPHERICAL, "Cameras", "How a camera becomes numbers (single view: the pre-trained checkpoint's)", choices=CAMERA_PARAMETERISATIONS
    )
    steps: int = param(3000, "Steps", "Optimizer steps", min=1, max=10**6, soft=(1, 50000))
    batch: int = param(3, "Batch", "Images per step", min=1, max=64)
    accumulation: int = param(3, "Accumulation", "Steps whose gradients add up before each update", min=1, max=64)
    learning_rate: float = param(
        1e-3, "Learning Rate", "Per image: scaled by batch × accumulation, as the original", min=0.0, open_min=True, max=1.0
    )
    alpha: float = param(
        5.0, "Alpha", "The mapper's output scale (single view: the pre-trained checkpoint's)", min=0.0, max=100.0, cli=None, ui=False
    )
    augmentation: str = param("AUTO", "Augmentation", "The images' random changes while training", choices=AUGMENTATIONS)
    width: int = TRAINING_WIDTH
    height: int = TRAINING_HEIGHT
    save_every: int = param(500, "Save Every", "Steps between checkpoints", min=1, max=10**6)
    seed: int = seed_field("Same seed and settings give the same training")
    resume: bool = param(
        False, "Resume", "Continue the run whose checkpoint is in the folder, with its settings: only more steps and Save Every may change"
    )
    view_word: str = "view"  # (SINGLE_VIEW: the pre-trained checkpoint's)
    object_word: str = "object"
    access: sources.ModelAccess = nested(sources.ModelAccess)
    overwrite: bool = overwrite_field("Start again over a checkpoint already in the folder")

    def check(self) -> list[Note]:
        if self.mode == SINGLE_VIEW and not self.view_mapper:
            refuse("view_mapper", "single-view training needs a pre-trained view mapper (a checkpoint folder from pre-training)")
        if self.mode != SINGLE_VIEW and self.view_mapper:
            refuse("view_mapper", f"is read in single-view training only, not in {TRAINING_MODES[self.mode].label}")
        if self.mode == PRETRAIN and len(self.data_dirs) < 2:
            refuse("data_dirs", f"pre-training needs at least 2 posed sets (one object mapper each), got {len(self.data_dirs)}")
        if self.mode != PRETRAIN and len(self.data_dirs) != 1:
            refuse("data_dirs", f"{TRAINING_MODES[self.mode].label} training reads one posed set (pre-training reads several)")
        if self.mode == SINGLE_VIEW:
            checkpoint.check_field("view_mapper", self.view_mapper)
        if self.resume:
            self.check_resume()
        if self.save_every > self.steps:
            return [Note("save_every", f"above the {self.steps} steps: the checkpoint is saved once, at the end")]
        return []

    @classmethod
    def unset_from(cls, values: Mapping[str, Any]) -> TrainRequest | None:
        """A resumed run's settings not given are its checkpoint's (a checkpoint that cannot be read: the resume check says why)."""
        if not values.get("resume") or not values.get("out_dir"):
            return None
        out = Path(values["out_dir"])
        try:
            old = checkpoint.read(out)
        except checkpoint.Unusable:
            return None

        def recorded(path: str) -> str:  # as the checkpoint names it: relative to its folder
            return str((out / path).resolve()) if path else ""

        trained = dict(mode=old.mode, seed=old.seed, object_word=old.object_word, data_dirs=[recorded(o.source) for o in old.objects])
        if old.batch:  # trained here (an imported checkpoint records none, and cannot be resumed)
            trained |= dict(batch=old.batch, accumulation=old.accumulation, learning_rate=old.learning_rate, augmentation=old.augmentation)
        if old.mode == SINGLE_VIEW:
            trained |= dict(view_mapper=recorded(old.view_mapper_from))
        else:
            trained |= dict(parameterisation=old.cameras.kind, width=old.width, height=old.height, alpha=old.alpha, view_word=old.view_word)
        return cls(**trained)  # type: ignore[arg-type]

    def check_resume(self) -> None:
        """A resumed run continues its checkpoint as it was trained, or is refused before any work (nothing written).

        Only the steps (more of them, to go further), how often it saves, where the model comes from (the same revision
        and text width: checked when it is found), the device and the precision may change; every other setting must be
        the one recorded: the learning rate too (it is constant, no schedule, so a resumed run equals an uninterrupted one).
        """
        if not self.out_dir:
            refuse("resume", "needs the checkpoint folder whose run it continues")
        out = Path(self.out_dir)
        try:
            old = checkpoint.read(out)
        except checkpoint.Unusable as exc:
            refuse("out_dir", f"cannot be resumed: {exc.reason}")
        if not (out / checkpoint.STATE_FILE).is_file():
            refuse("out_dir", f"cannot be resumed: it holds no {checkpoint.STATE_FILE} (an imported checkpoint, or one saved without)")
        if self.steps <= old.steps_done:
            refuse("steps", f"the checkpoint in {out} has done {old.steps_done} steps already: give more to continue it")
        kept: dict[str, tuple[Any, Any]] = {
            "mode": (self.mode, old.mode),
            "data_dirs": (
                [recorded_path(d, out) for d in self.data_dirs],
                [o.source for o in old.objects],
            ),  # as the checkpoint records them
            "seed": (self.seed, old.seed),
            "batch": (self.batch, old.batch),
            "accumulation": (self.accumulation, old.accumulation),
            "learning_rate": (self.learning_rate, old.learning_rate),
            "augmentation": (self.augmentation, old.augmentation),
            "object_word": (self.object_word, old.object_word),
        }
        if self.mode == SINGLE_VIEW:  # the size, cameras, α and view word are the pre-trained checkpoint's
            kept["view_mapper"] = (recorded_path(self.view_mapper, out), old.view_mapper_from)
        else:
            kept |= {
                "parameterisation": (self.parameterisation, old.cameras.kind),
                "width": ((self.width, self.height), (old.width, old.height)),
                "alpha": (self.alpha, old.alpha),
                "view_word": (self.view_word, old.view_word),
            }
        changed = [(name, asked, trained) for name, (asked, trained) in kept.items() if asked != trained]
        if changed:
            labels = {leaf.name: leaf.param.label for leaf in leaves(TrainRequest)}
            name, asked, trained = changed[0]
            unnamed = "" if name in labels else f"{name} {_setting(asked)}: "  # an undeclared field: the refusal names it
            shown = f", not {_setting(asked)}" if isinstance(asked, tuple) else ""  # a size: the option shows its width alone
            others = [f"{labels.get(n, n)} ({_setting(t)})" for n, _, t in changed[1:]]
            also = f"; {' and '.join(others)} differ too" if others else ""
            refuse(
                name,
                f"{unnamed}the checkpoint in {out} was trained with {_setting(trained)}{shown}: a resumed run keeps its settings "
                f"(only the steps, to go further, and how often it saves may change){also}",
            )

    def models(self) -> list[tuple[str, str, Inspect]]:
        return [("model", self.model, sources.inspect_stable_diffusion)]


def _setting(value: Any) -> str:
    """A recorded setting as a refusal quotes it: a size as 128×64, posed sets by their paths."""
    if isinstance(value, tuple):
        return "×".join(map(str, value))
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "no posed sets"
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class TrainResult:
    checkpoint: str = ""
    steps_done: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What batch.py prints of it."""
        last = self.losses[-1] if self.losses else None
        return {"paths": {"checkpoint": self.checkpoint}, "steps_done": self.steps_done, "last_loss": last, "warnings": self.warnings}


@dataclass
class PosedSet:
    """One object's training views: images in [0, 1] and their cameras' raw numbers (DTU12: at the checkpoint's camera size)."""

    name: str
    images: list[np.ndarray]
    numbers: np.ndarray  # [N, k]
    target: list[float]
    source: str
    range_numbers: np.ndarray  # [M, k]: more cameras the ranges are fitted over (a DTU set's calibration); M = 0 if none


def read_sets(r: TrainRequest, kind: str, size: tuple[int, int]) -> list[PosedSet]:
    """Every posed set of the request, its cameras' numbers as they read for images of ``size`` (width, height)."""
    sets: list[PosedSet] = []
    for folder in map(Path, r.data_dirs):
        posed = read_posed_set(folder, kind)
        least = 1 if r.mode == SINGLE_VIEW else 2
        if len(posed.images) < least:
            raise BadInput(
                f"{TRAINING_MODES[r.mode].label} training needs at least {least} views per posed set; {folder} has {len(posed.images)}"
            )
        height, width = posed.images[0].shape[:2]
        name = folder.resolve().name
        if any(s.name == name for s in sets):
            name = f"{name}_{len(sets)}"
        numbers, ranged = (at_size(n, kind, (width, height), size) for n in (posed.numbers, posed.range_numbers))
        sets.append(PosedSet(name, posed.images, numbers, posed.target, str(folder.resolve()), ranged))
    return sets


def fitted_ranges(kind: str, sets: list[PosedSet]) -> tuple[CameraRanges, list[str]]:
    """Ranges over the training cameras, and over every camera a set names for them (a DTU set: all its calibration cameras,
    as the original); with a warning for each entry the training data does not vary."""
    ranges = CameraRanges.fit(kind, np.concatenate([n for s in sets for n in (s.numbers, s.range_numbers)]))
    constant = ranges.constant_names()
    if not constant:
        return ranges, []
    them = "it" if len(constant) == 1 else "them"
    return ranges, [
        f"The training cameras all have the same {' and '.join(constant)}: the view mapper learns nothing of {them} and reads "
        "any camera as at the training value (vary the views, as the staggered orbit does)"
    ]


def check_base(folder: sources.ModelFolder) -> int:
    """ViewNeTI's base is Stable Diffusion 2.x: a v-prediction scheduler and a CLIP text encoder; its text width."""
    schedule = sources.read_json(folder.path / "scheduler" / "scheduler_config.json")
    encoder = sources.read_json(folder.path / "text_encoder" / "config.json")
    if schedule.get("prediction_type") != "v_prediction":
        raise BadInput(
            f"{folder.name} predicts {schedule.get('prediction_type', 'epsilon')!r}: ViewNeTI's base is SD 2.x with v-prediction"
        )
    if encoder.get("model_type") not in ("clip_text_model", None) or folder.kind != sources.SD:
        raise BadInput(f"{folder.name} is not SD 2.x-shaped (one CLIP text encoder)")
    return int(encoder.get("hidden_size", 0))


def train_viewneti(r: TrainRequest, report: Reporter) -> TrainResult:
    started = time.perf_counter()
    out = Path(r.out_dir)
    check_writable(out)
    pretrained = checkpoint.load(Path(r.view_mapper)) if r.mode == SINGLE_VIEW else None
    if pretrained is not None:
        kind, size = pretrained[0].cameras.kind, (pretrained[0].width, pretrained[0].height)
        camera_size = (pretrained[0].camera_size[0], pretrained[0].camera_size[1])
    else:
        kind, size = r.parameterisation, (r.width, r.height)
        camera_size = size
    sets = read_sets(r, kind, camera_size)
    previous = checkpoint.load(out) if r.resume else None
    if not r.resume and (out / checkpoint.INFO).exists() and not r.overwrite:
        raise BadInput(f"{out} already holds a checkpoint (resume it, or enable overwrite)")
    access = r.access
    folder = sources.inspect_stable_diffusion(access.locate(r.model, report), r.model, access.allow_pickle)
    width = check_base(folder)
    for held in (pretrained, previous):  # before any model is loaded
        if held is not None:
            held[0].check_base(width, folder.revision, folder.name)
    report.total = r.steps + 2

    import torch

    from ..diffusion import loading
    from . import attention, text
    from .augment import AUTO, NONE, augment
    from .mapper import Mapper, MapperSpec
    from .pipeline import Mappers, layer_states

    device = loading.pick_device(access.device)
    model = loading.load_stable_diffusion(folder, device, torch.float32)  # the original trains in fp32
    unet, vae, encoder = model.unet, model.vae, model.text_encoder
    if len(attention.install(unet)) != 16:
        raise BadInput(f"{folder.name} does not have SD 2.x's 16 cross-attention layers")

    def norm(word: str) -> float:
        return float(text.word_row(model.tokenizer, encoder, word).norm())

    objects = [checkpoint.TrainedObject(s.name, s.target, recorded_path(s.source, out)) for s in sets]
    sigmas = pretrained[0].sigmas if pretrained is not None else checkpoint.FOURIER_SIGMAS  # an imported view mapper's own
    view = Mapper(MapperSpec(SIZES[kind], width, sigmas), seed=r.seed).to(device)
    warnings: list[str] = []
    if pretrained is not None:
        base_info, view_state = pretrained[0], pretrained[1]
        view.load_state_dict(view_state)
        view.requires_grad_(False)
        info = checkpoint.CheckpointInfo(
            **{**base_info.to_json(), "cameras": base_info.cameras, "objects": objects, "losses": [], "steps_done": 0},
        )
        info.view_norm = info.view_norm or norm(info.view_word)  # an imported original's norms come from this base
        info.view_mapper_from = recorded_path(r.view_mapper, out)
        warnings += info.cameras.warnings(sets[0].numbers, "The image's camera")
    else:
        ranges, warnings = fitted_ranges(kind, sets)
        info = checkpoint.CheckpointInfo(ranges, width, objects, size[0], size[1], list(size), r.view_word, view_norm=norm(r.view_word))
        info.alpha = r.alpha
    info.object_word, info.object_norm = r.object_word, norm(r.object_word)
    info.base_model, info.base_revision, info.mode, info.seed = r.model, folder.revision, r.mode, r.seed
    info.batch, info.accumulation, info.learning_rate, info.augmentation = r.batch, r.accumulation, r.learning_rate, r.augmentation
    object_mappers = [Mapper(MapperSpec(0, width, sigmas), seed=r.seed + 1 + i).to(device) for i in range(len(sets))]
    params = [p for m in (view, *object_mappers) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=r.learning_rate * r.batch * r.accumulation, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    generator = torch.Generator("cpu").manual_seed(r.seed)
    if previous is not None:  # its settings are those asked for (TrainRequest.check_resume), its tensors those its JSON says
        old, view_state, object_states, state = previous
        assert state is not None, "checked with the request"
        view.load_state_dict(view_state)
        for mapper, object_state in zip(object_mappers, object_states):
            mapper.load_state_dict(object_state)
        _restore(optimizer, generator, state)
        info.steps_done, info.losses, info.cameras = old.steps_done, old.losses, old.cameras
    for warning in warnings:
        report.note(warning)
    report.step(f"Loaded {folder.name}")

    # The images, and without augmentation their latent distributions once (the VAE is frozen)
    augmentation = TRAINING_MODES[r.mode].augmentation if r.augmentation == AUTO else r.augmentation
    pixels = [torch.from_numpy(np.stack([_resized(im, *size) for im in s.images])).permute(0, 3, 1, 2).to(device) for s in sets]
    fixed = []
    if augmentation == NONE:
        with torch.no_grad():
            fixed = [(p.mean, p.std) for p in (vae.encode(x * 2 - 1).latent_dist for x in pixels)]

    def latent_sample(which: int, pick: torch.Tensor) -> torch.Tensor:
        """The picked images of one set (augmented with this run's generator) as VAE latent samples, scaled."""
        if fixed:
            mean, std = fixed[which][0][pick], fixed[which][1][pick]
        else:
            with torch.no_grad():
                chosen = augment(pixels[which][pick].cpu(), augmentation, generator).to(device)
                posterior = vae.encode(chosen * 2 - 1).latent_dist
            mean, std = posterior.mean, posterior.std
        return (mean + std * torch.randn(mean.shape, generator=generator).to(device)) * vae.config.scaling_factor

    cameras = [torch.from_numpy(info.cameras.normalise(s.numbers)).float() for s in sets]
    scheduler = loading_scheduler(model.scheduler_config)
    ids, positions = text.prompt_ids(model.tokenizer, f"{text.VIEW}. A photo of a {text.OBJECT}")
    ids = ids.to(device)
    report.step("Images encoded")

    saved = info.steps_done
    try:
        for step in range(info.steps_done, r.steps):
            total = 0.0
            for _ in range(r.accumulation):
                which = int(torch.randint(0, len(sets), (1,), generator=generator)) if len(sets) > 1 else 0  # one set per micro-batch
                pick = torch.randint(0, len(sets[which].images), (r.batch,), generator=generator)
                sample = latent_sample(which, pick)
                noise = torch.randn(sample.shape, generator=generator).to(device)
                t = torch.randint(0, scheduler.config.num_train_timesteps, (r.batch,), generator=generator).to(device)
                noisy = scheduler.add_noise(sample, noise, t)
                target = scheduler.get_velocity(sample, noise, t) if scheduler.config.prediction_type == "v_prediction" else noise
                mappers = Mappers(view, object_mappers[which], info.view_norm, info.object_norm, info.alpha)
                states = layer_states(mappers, encoder, ids, positions, t, cameras[which][pick])
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
                _save(out, info, view, object_mappers, optimizer, generator)
                saved = info.steps_done
            report.step(f"Step {step + 1} of {r.steps}: loss {total:.4f}", done=step + 3)  # a resumed run's bar starts where it left off
    except JobCancelled:
        where = f"{KEPT}the checkpoint in {out} at step {saved} (--resume continues it)" if saved else "; no checkpoint was saved yet"
        raise JobCancelled(f"Training cancelled at step {info.steps_done}{where}") from None
    return TrainResult(str(out), info.steps_done, info.losses, time.perf_counter() - started, warnings)


def loading_scheduler(config: dict[str, Any]) -> Any:
    """The training noise schedule: DDPM over the model's scheduler settings."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(config)


def _resized(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    from ..imagefiles import resize

    return rgb if rgb.shape[:2] == (height, width) else resize(rgb, width, height)


def _save(out: Path, info: checkpoint.CheckpointInfo, view: Any, objects: list[Any], optimizer: Any, generator: Any) -> None:
    import torch

    state: dict[str, Any] = {"generator": generator.get_state()}
    for index, moments in optimizer.state_dict()["state"].items():
        for name, value in moments.items():
            state[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu()
    checkpoint.save(out, info, view.state_dict(), [m.state_dict() for m in objects], state, overwrite=True)
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
