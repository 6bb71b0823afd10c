"""Where a diffusers model is, and whether it is usable, before anything heavy loads.

A model is named by a local folder (absolute, or relative to the models folder)
or by a Hugging Face repo id, resolved from the local cache; the network is
used only when the caller allows downloads. The folder is checked against the
published diffusers layout: each component's config and weights, safetensors
unless pickled weights are allowed. The RGBD kind comes from ``vae/config.json``
(6 channels: depth packed in two bytes; 4: depth in one channel), never from
the name; likewise SD versus SDXL comes from the UNet config, and whether a
ControlNet fits a base from both configs. Only the standard library is used, so
Blender's Python can list models.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..choices import DEVICES, PRECISIONS
from ..errors import BadInput
from ..params import FOLDER, INPUT_FOLDER, Inspect, param, refuse

if TYPE_CHECKING:
    from ..progress import Reporter

RGBD6, RGBD4 = "rgbd6", "rgbd4"
RGBD_KINDS = (RGBD6, RGBD4)  # the LDM3D generators (a 6- or a 4-channel VAE)
RGBD_SR = "rgbd-sr"  # LDM3D-sr: an RGBD upscaler (a 4-channel VAE, a UNet reading noisy and low-res latents side by side)
SD, SDXL = "sd", "sdxl"  # RGB Stable Diffusion with one text encoder (1.x, 2.x), or SDXL's two
#: Components the LDM3D pipeline needs, with the config file that marks each.
CONFIGS = {
    "unet": "config.json",
    "vae": "config.json",
    "text_encoder": "config.json",
    "scheduler": "scheduler_config.json",
}
#: A tokenizer folder holds either form: the fast tokenizer's file (what transformers 5 saves) or the BPE pair (as published).
TOKENIZER_FORMS = (("tokenizer.json",), ("vocab.json", "merges.txt"))
TOKENIZER_JSON = ("tokenizer.json", "vocab.json", "tokenizer_config.json", "special_tokens_map.json")
SAFE_WEIGHTS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}
PICKLED_WEIGHTS = {"unet": "diffusion_pytorch_model.bin", "vae": "diffusion_pytorch_model.bin", "text_encoder": "pytorch_model.bin"}
DOWNLOAD_PATTERNS = ["model_index.json", *(f"{c}/*" for c in (*CONFIGS, "tokenizer"))]
#: An SD or SDXL pipeline repo (SD 1.x simply has no *_2 folders).
SD_DOWNLOAD_PATTERNS = [*DOWNLOAD_PATTERNS, "text_encoder_2/*", "tokenizer_2/*"]
#: A single-model repo such as a ControlNet or a VAE (lllyasviel/control_v11p_sd15_canny, madebyollin/sdxl-vae-fp16-fix).
COMPONENT_PATTERNS = ["config.json", "diffusion_pytorch_model*"]
PICKLE_PATTERNS = ["*.bin", "*.ckpt", "*.pt", "*.pth", "*.pkl"]
OTHER_FORMATS = ["*.onnx", "*.msgpack", "*.h5", "*.fp16.*", "*.non_ema.*"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class ModelFolder:
    """A checked diffusers pipeline folder: LDM3D, or Stable Diffusion (SD / SDXL) as a ControlNet base."""

    path: Path
    name: str  # what the user asked for: repo id or folder
    kind: str  # RGBD6 or RGBD4 (LDM3D), RGBD_SR (LDM3D-sr); SD or SDXL
    revision: str  # the cache snapshot's commit, or a hash of the folder's configs and weight sizes
    safetensors: dict[str, bool]  # per component: False where allowed pickled weights are used
    unet_config: dict[str, Any]
    vae_config: dict[str, Any]
    weight_bytes: int = 0  # on disk, for the memory estimate

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae_config.get("block_out_channels", [0] * 4)) - 1)

    @property
    def native_size(self) -> int:
        sample = self.unet_config.get("sample_size", 64)
        return int(sample if isinstance(sample, int) else sample[0]) * self.vae_scale_factor


def provenance(name: str, folder: Any) -> dict[str, Any]:
    """What a generated file's meta.json records of its model: the name asked for, and the checked folder's revision and kind.

    Not the folder's path: it differs between machines, and the same request should give the same bytes on any of them.
    """
    return {"model": name, "revision": folder.revision, "kind": folder.kind}


def read_json(path: Path) -> dict[str, Any]:
    """A model's JSON file (a config, an index), or a refusal naming it: unreadable, cut short, not JSON."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"Cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a download cut short, or not JSON at all
        raise BadInput(f"{path} is not valid JSON (cut short?): {exc}") from None
    if not isinstance(value, dict):
        raise BadInput(f"{path} is not a JSON object")
    return value


def safetensors_problem(path: Path) -> str:
    """Why ``path`` is not a whole safetensors file ("" if it is): its header read, and its size against the header's tensors."""
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            length = int.from_bytes(file.read(8), "little")
            if size < 8 or not 2 <= length <= size - 8:
                return f"{path} is cut short or not a safetensors file"
            header = json.loads(file.read(length))
        end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror or exc}"
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return f"{path} is damaged (its safetensors header does not read)"
    expected = 8 + length + end
    if size != expected:
        return (
            f"{path} is cut short ({size:,} of {expected:,} bytes)"
            if size < expected
            else f"{path} is damaged ({size - expected:,} bytes too many)"
        )
    return ""


def _safetensors_files_problem(folder: Path, stem: str) -> str:
    """Why ``stem``.safetensors, or the shards its index lists, are not whole ("" if they are)."""
    index = folder / f"{stem}.safetensors.index.json"
    if not index.is_file():
        return safetensors_problem(folder / f"{stem}.safetensors")
    try:
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
    except BadInput as exc:
        return str(exc)
    missing = [f"{folder / shard} is missing" for shard in shards if not (folder / shard).is_file()]
    return "; ".join(missing) or next((p for p in (safetensors_problem(folder / shard) for shard in shards) if p), "")


def hub_cache_dir(cache_dir: str = "") -> Path:
    """The Hugging Face hub cache: the given folder, else the environment's, else the default."""
    if cache_dir:
        folder = Path(cache_dir).expanduser()
        nested = folder / "hub"  # HF_HOME given where the hub cache was meant
        return nested if nested.is_dir() and not any(folder.glob("models--*")) else folder
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return home / "hub"


def locate(
    source: str,
    models_dir: str = "",
    cache_dir: str = "",
    allow_download: bool = False,
    allow_pickle: bool = False,
    download_progress: type | None = None,
    patterns: list[str] | None = None,
) -> Path:
    """The folder holding ``source``: a local folder or a cached (or downloaded) repo.

    ``patterns`` are the files a download fetches (default: an LDM3D pipeline's).
    """
    folder = find_local(source, models_dir, cache_dir)
    if folder is not None and (folder.parent.name != "snapshots" or not allow_download):
        return folder
    source = source.strip()
    cache = hub_cache_dir(cache_dir)
    if not allow_download:
        raise BadInput(not_cached(source, cache))
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise BadInput("Loading a Hugging Face repo id needs the huggingface_hub package in the engine's Python") from None
    ignore = OTHER_FORMATS + ([] if allow_pickle else PICKLE_PATTERNS)
    try:
        path = snapshot_download(
            source,
            cache_dir=str(cache),
            allow_patterns=patterns or DOWNLOAD_PATTERNS,
            ignore_patterns=ignore,
            tqdm_class=download_progress,
        )
    except Exception as exc:  # huggingface_hub raises several kinds for "not there"
        raise BadInput(f"Could not download {source}: {type(exc).__name__}: {exc}") from None
    return Path(str(path))


def not_cached(source: str, cache: Path) -> str:
    return (
        f"Model {source} is not in the Hugging Face cache ({cache}); allow downloads (with Blender's online access on) "
        "or point the models folder at a downloaded copy"
    )


def find_local(source: str, models_dir: str = "", cache_dir: str = "") -> Path | None:
    """The folder holding ``source`` on this machine (a folder, or a repo in the hub cache), without the network or
    huggingface_hub: what every job checks before any work. None when it is not here."""
    source = source.strip()
    if not source:
        raise BadInput("No model given: choose a model folder or a Hugging Face repo id such as Intel/ldm3d-pano")
    for folder in _candidates(source, models_dir):
        if folder.is_dir():
            return folder
    if not _REPO_ID.match(source):
        looked = " and ".join(str(c) for c in _candidates(source, models_dir))
        raise BadInput(f"Model {source!r} not found: no folder at {looked}, and it is not a Hugging Face repo id")
    repo = hub_cache_dir(cache_dir) / f"models--{source.replace('/', '--')}"
    return _cached_snapshot(repo) if repo.is_dir() else None


def _candidates(source: str, models_dir: str) -> list[Path]:
    candidates = [Path(source).expanduser()]
    if models_dir and not Path(source).is_absolute():
        candidates.insert(0, Path(models_dir).expanduser() / source)
    return candidates


@dataclass
class ModelAccess:
    """Where models come from, what may be loaded, and where they run: the part every model request shares.

    The operators fill it from the add-on preferences; ``batch.py`` from these options.
    """

    models_dir: str = param(
        "", "Models Folder", "Local model folders; a model named by a relative path is looked for here first", path=INPUT_FOLDER
    )
    cache_dir: str = param("", "Hugging Face Cache", "The Hugging Face hub cache; empty: the environment's, else the default", path=FOLDER)
    allow_download: bool = param(False, "Allow Downloads", "Let the models download (needs network)", cli="--allow-downloads")
    allow_pickle: bool = param(
        False, "Allow Pickled Weights", "Also load .bin/.ckpt weights, which can run code when loaded; only for models you trust"
    )
    device: str = param("AUTO", "Device", "Where the models run", choices=DEVICES)
    precision: str = param("AUTO", "Precision", "The models' number format", choices=PRECISIONS)

    def verify(self, source: str, inspect: Inspect) -> None:
        """Before any work: ``source`` is on this machine (or may be downloaded) and ``inspect`` finds it of the right kind."""
        folder = find_local(source, self.models_dir, self.cache_dir)
        if folder is None:
            if self.allow_download:
                return  # fetched and checked when the job loads it
            raise BadInput(not_cached(source.strip(), hub_cache_dir(self.cache_dir)))
        inspect(folder, source, self.allow_pickle)

    def locate(self, source: str, report: Reporter | None = None, patterns: list[str] | None = None) -> Path:
        """The folder holding ``source``, found (or downloaded, its progress told to ``report``) as these settings allow.

        ``patterns``: the files a download fetches; see :func:`locate`.
        """
        progress = download_progress(report) if report is not None and self.allow_download else None
        return locate(source, self.models_dir, self.cache_dir, self.allow_download, self.allow_pickle, progress, patterns)


def download_progress(report: Reporter) -> type:
    """A tqdm class for huggingface_hub that turns its file count into progress notes (and honours cancel)."""
    from tqdm.auto import tqdm

    class DownloadProgress(tqdm):  # type: ignore[misc, valid-type]
        """Never drawn (the notes are the progress); counts itself, as a disabled tqdm does not."""

        files_done = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "disable": True})

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            self.files_done += int(n or 0)
            report.note(f"Downloading model files: {self.files_done} of {self.total or '?'}")
            return shown

    return DownloadProgress


def _weights(folder: Path, stem: str, pickled_name: str, where: str, allow_pickle: bool) -> tuple[bool, str]:
    """(uses safetensors, problem) for the weights ``stem``.safetensors or, if allowed, ``pickled_name``."""
    if (folder / f"{stem}.safetensors").is_file() or (folder / f"{stem}.safetensors.index.json").is_file():
        return True, _safetensors_files_problem(folder, stem)
    if (folder / pickled_name).is_file() or (folder / f"{pickled_name}.index.json").is_file():
        if allow_pickle:
            return False, ""
        return False, (
            f"{where} has only pickled weights ({pickled_name}); pickled files can run code when loaded. "
            "Convert it to safetensors, or allow pickled weights in the preferences if you trust its source"
        )
    return False, f"{where} has no weights ({stem}.safetensors)"


def inspect_transformers_model(folder: Path, name: str, model_type: str | None, allow_pickle: bool) -> bool:
    """Check a transformers model folder (config + weights) of ``model_type`` (None: any); returns whether it is safetensors."""
    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else None
    if config is None:
        raise BadInput(f"{name}: no config.json in {folder}")
    if model_type is not None and config.get("model_type") != model_type:
        raise BadInput(f"{name} is a {config.get('model_type', 'unknown')!r} model, not {model_type!r}")
    safe, problem = _weights(folder, "model", "pytorch_model.bin", str(folder), allow_pickle)
    if problem:
        raise BadInput(f"{name}: {problem}")
    return safe


def check_complete(folder: Path, name: str, configs: dict[str, str], tokenizers: tuple[str, ...]) -> None:
    """Refuse a folder that lacks a component's config or a tokenizer's files, naming them all."""
    missing = [f"{c}/{f}" for c, f in configs.items() if not (folder / c / f).is_file()]
    missing += [
        f"{t}/tokenizer.json (or {t}/vocab.json and merges.txt)"
        for t in tokenizers
        if not any(all((folder / t / f).is_file() for f in form) for form in TOKENIZER_FORMS)
    ]
    if missing:
        raise BadInput(f"{name} is not a complete diffusers model: {', '.join(missing)} missing in {folder}")
    for path in [folder / c / f for c, f in configs.items()] + [folder / t / f for t in tokenizers for f in TOKENIZER_JSON]:
        if path.is_file():
            read_json(path)  # a JSON file cut short names itself now, not as the loader's error later


def component_weights(folder: Path, name: str, components: tuple[str, ...], allow_pickle: bool) -> tuple[dict[str, bool], int]:
    """Per component whether it is safetensors (all problems named at once), and the weights' bytes on disk."""
    problems, safe = [], {}
    for component in components:
        stem, pickled = SAFE_WEIGHTS.get(component, "model"), PICKLED_WEIGHTS.get(component, "pytorch_model.bin")
        safe[component], problem = _weights(folder / component, stem, pickled, f"{component}/", allow_pickle)
        if problem:
            problems.append(problem)
    if problems:
        raise BadInput(f"{name}: " + "; ".join(problems))
    weight_bytes = sum(f.stat().st_size for c, is_safe in safe.items() for f in (folder / c).glob("*.safetensors" if is_safe else "*.bin"))
    return safe, weight_bytes


def inspect_ldm3d(folder: Path, name: str = "", allow_pickle: bool = False) -> ModelFolder:
    """Check the published LDM3D layout and read the RGBD kind from the VAE config."""
    name = name or str(folder)
    check_complete(folder, name, CONFIGS, ("tokenizer",))
    vae, unet = read_json(folder / "vae" / "config.json"), read_json(folder / "unet" / "config.json")
    channels = vae.get("out_channels", vae.get("in_channels"))
    if channels == 3:
        raise BadInput(f"{name} is an RGB model (3-channel VAE, e.g. plain Stable Diffusion), not an RGBD model like LDM3D")
    if channels not in (4, 6) or vae.get("in_channels") != channels:
        raise BadInput(f"{name}: a VAE with {vae.get('in_channels')} in / {vae.get('out_channels')} out channels is not LDM3D's (4 or 6)")
    if unet.get("in_channels") == 2 * vae.get("latent_channels", 4):
        raise BadInput(f"{name} is an RGBD upscaler (LDM3D-sr): it upscales panoramas, it does not generate them")
    _check_unet_fits_vae(name, unet, vae, "is not supported")
    safe, weight_bytes = component_weights(folder, name, tuple(SAFE_WEIGHTS), allow_pickle)
    return ModelFolder(
        path=folder,
        name=name,
        kind=RGBD6 if channels == 6 else RGBD4,
        revision=folder_revision(folder),
        safetensors=safe,
        unet_config=unet,
        vae_config=vae,
        weight_bytes=weight_bytes,
    )


def inspect_ldm3d_sr(folder: Path, name: str = "", allow_pickle: bool = False) -> ModelFolder:
    """Check the published LDM3D-sr layout: a 4-channel RGBD VAE, and a UNet taking noisy + low-res latents with the noise level as class."""
    name = name or str(folder)
    check_complete(folder, name, CONFIGS, ("tokenizer",))
    vae, unet = read_json(folder / "vae" / "config.json"), read_json(folder / "unet" / "config.json")
    latent = vae.get("latent_channels", 4)
    if vae.get("in_channels") != 4 or vae.get("out_channels") != 4:
        raise BadInput(
            f"{name}: an RGBD upscaler needs a 4-channel VAE (RGB + depth), this one has {vae.get('in_channels')} in / {vae.get('out_channels')} out"
        )
    if unet.get("in_channels") != 2 * latent or unet.get("out_channels") != latent:
        raise BadInput(
            f"{name}: an RGBD upscaler's UNet reads {2 * latent} channels (noisy latents + low-res latents) and writes {latent}; "
            f"this one reads {unet.get('in_channels')} and writes {unet.get('out_channels')}"
        )
    if not unet.get("num_class_embeds") and not unet.get("class_embed_type"):
        raise BadInput(f"{name}: the UNet has no class embedding to read the noise level from (not an upscaler)")
    safe, weight_bytes = component_weights(folder, name, tuple(SAFE_WEIGHTS), allow_pickle)
    return ModelFolder(folder, name, RGBD_SR, folder_revision(folder), safe, unet, vae, weight_bytes)


def _check_unet_fits_vae(name: str, unet: dict[str, Any], vae: dict[str, Any], refusal: str) -> None:
    """A UNet that does not denoise the VAE's latents (inpainting and similar variants) is refused."""
    latent = vae.get("latent_channels", 4)
    if unet.get("in_channels") != latent or unet.get("out_channels") != latent:
        raise BadInput(
            f"{name}: the UNet takes {unet.get('in_channels')} channels but the VAE's latents have {latent} "
            f"(an inpainting or other variant {refusal})"
        )


def inspect_stable_diffusion(folder: Path, name: str = "", allow_pickle: bool = False) -> ModelFolder:
    """Check an RGB Stable Diffusion pipeline (SD 1.x/2.x, or SDXL with its second text encoder) as a ControlNet base."""
    name = name or str(folder)
    check_complete(folder, name, {"unet": "config.json"}, ())
    unet = read_json(folder / "unet" / "config.json")
    kind = SDXL if unet.get("addition_embed_type") == "text_time" else SD
    configs = {**CONFIGS, "text_encoder_2": "config.json"} if kind == SDXL else CONFIGS
    tokenizers = ("tokenizer", "tokenizer_2") if kind == SDXL else ("tokenizer",)
    check_complete(folder, name, configs, tokenizers)
    vae = read_json(folder / "vae" / "config.json")
    if vae.get("in_channels", 3) != 3 or vae.get("out_channels", 3) != 3:
        raise BadInput(f"{name} has a {vae.get('out_channels')}-channel VAE: an RGBD model (LDM3D) cannot be a ControlNet base")
    _check_unet_fits_vae(name, unet, vae, "cannot be a ControlNet base")
    components = ("unet", "vae", "text_encoder", "text_encoder_2") if kind == SDXL else tuple(SAFE_WEIGHTS)
    safe, weight_bytes = component_weights(folder, name, components, allow_pickle)
    return ModelFolder(folder, name, kind, folder_revision(folder), safe, unet, vae, weight_bytes)


@dataclass
class ComponentFolder:
    """A checked single-model diffusers folder: a ControlNet, or a VAE that replaces the base's."""

    path: Path
    name: str
    config: dict[str, Any]
    safetensors: bool
    revision: str
    weight_bytes: int = 0


def inspect_component(folder: Path, name: str, class_name: str, allow_pickle: bool = False) -> ComponentFolder:
    """Check ``config.json`` (a ``class_name`` model) and its weights, safetensors unless pickles are allowed."""
    name = name or str(folder)
    if not (folder / "config.json").is_file():
        raise BadInput(f"{name}: no config.json in {folder}")
    config = read_json(folder / "config.json")
    if config.get("_class_name") != class_name:
        raise BadInput(f"{name} is a {config.get('_class_name', 'unknown')!r} model, not a {class_name}")
    safe, problem = _weights(folder, "diffusion_pytorch_model", "diffusion_pytorch_model.bin", name, allow_pickle)
    if problem:
        raise BadInput(problem)
    weight_bytes = sum(f.stat().st_size for f in folder.glob("*.safetensors" if safe else "*.bin"))
    return ComponentFolder(folder, name, config, safe, folder_revision(folder), weight_bytes)


#: UNet settings a ControlNet must share with its base: its residuals are added block by block, and it
#: reads the same text (and, for SDXL, size) conditioning.
MATCHING_KEYS = ("cross_attention_dim", "addition_embed_type", "in_channels", "block_out_channels", "layers_per_block")
_FAMILIES = {768: "Stable Diffusion 1.x", 1024: "Stable Diffusion 2.x", 2048: "SDXL"}


def _family(config: dict[str, Any]) -> str:
    dim = config.get("cross_attention_dim")
    return _FAMILIES.get(dim, f"a base with {dim}-wide text embeddings") if isinstance(dim, int) else f"a base with {dim} text embeddings"


def check_controlnet_base(base: ModelFolder, controlnet: ComponentFolder) -> None:
    """Refuse a ControlNet made for another base (e.g. an SD 1.5 ControlNet on SDXL), from the configs alone."""
    differ = [k for k in MATCHING_KEYS if _setting(controlnet.config, k) != _setting(base.unet_config, k)]
    if differ:
        details = ", ".join(f"{k} {_setting(controlnet.config, k)} vs {_setting(base.unet_config, k)}" for k in differ)
        raise BadInput(
            f"ControlNet {controlnet.name} was made for {_family(controlnet.config)}, but {base.name} is "
            f"{_family(base.unet_config)} ({details}); choose a ControlNet trained for this base"
        )


def _setting(config: dict[str, Any], key: str) -> Any:
    """A config value as diffusers defaults it (missing keys in older configs), lists for tuples."""
    defaults: dict[str, Any] = {"in_channels": 4, "layers_per_block": 2, "block_out_channels": [320, 640, 1280, 1280]}
    value = config.get(key, defaults.get(key))
    return list(value) if isinstance(value, tuple) else value


def check_vae_override(base: ModelFolder, vae: ComponentFolder) -> None:
    """A replacement VAE (e.g. SDXL's fp16 fix) must read and write the base's latents."""
    latent, base_latent = vae.config.get("latent_channels", 4), base.vae_config.get("latent_channels", 4)
    if vae.config.get("out_channels", 3) != 3 or latent != base_latent:
        raise BadInput(
            f"VAE {vae.name} ({vae.config.get('out_channels')} colour channels, {latent} latent) does not fit "
            f"{base.name} (3 colour channels, {base_latent} latent)"
        )


def schedule_length(folder: Path) -> int:
    """The most denoising steps the model's schedule takes: its training steps, less the offset some configs add to every step."""
    path = folder / "scheduler" / "scheduler_config.json"
    config = read_json(path) if path.is_file() else {}
    return int(config.get("num_train_timesteps", 1000)) - int(config.get("steps_offset", 0) or 0)


def sampled(inspect: Inspect, steps: int, field: str = "steps") -> Inspect:
    """``inspect``, then the request's denoising ``steps`` against the model's schedule (refused on ``field``)."""

    def checked(folder: Path, name: str, allow_pickle: bool) -> Any:
        model = inspect(folder, name, allow_pickle)
        longest = schedule_length(folder)
        if steps > longest:
            refuse(field, f"{name}'s schedule takes at most {longest} steps")
        return model

    return checked


def folder_revision(folder: Path) -> str:
    """The snapshot commit for a cached repo; else a short hash of configs and weight sizes."""
    if folder.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", folder.name):
        return folder.name
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            rel = path.relative_to(folder).as_posix()
            digest.update(rel.encode())
            digest.update(path.read_bytes() if path.suffix == ".json" else str(path.stat().st_size).encode())
    return "folder-" + digest.hexdigest()[:16]


@dataclass
class ModelEntry:
    """One model the picker can offer."""

    source: str  # a folder path or a repo id, what ``locate`` takes
    label: str
    kind: str


def _kind(folder: Path) -> str:
    try:
        vae = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    channels = vae.get("out_channels")
    if not (folder / "unet").is_dir():
        return ""
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        unet = {}  # the loader checks it later; the listing goes by the VAE
    if unet.get("in_channels") == 2 * vae.get("latent_channels", 4):
        return RGBD_SR if channels == 4 else ""
    return {6: RGBD6, 4: RGBD4}.get(channels, "")


def find_models(models_dir: str = "", cache_dir: str = "") -> list[ModelEntry]:
    """LDM3D models (generators and the upscaler) on this machine: folders in the models folder, and repos in the hub cache."""
    entries: list[ModelEntry] = []
    if models_dir and Path(models_dir).expanduser().is_dir():
        for folder in sorted(Path(models_dir).expanduser().iterdir()):
            kind = _kind(folder)
            if kind:
                entries.append(ModelEntry(str(folder), folder.name, kind))
    cache = hub_cache_dir(cache_dir)
    if cache.is_dir():
        for repo in sorted(cache.glob("models--*--*")):
            snapshot = _cached_snapshot(repo)
            kind = _kind(snapshot) if snapshot is not None else ""
            if kind:
                repo_id = repo.name[len("models--") :].replace("--", "/", 1)
                entries.append(ModelEntry(repo_id, f"{repo_id} (cache)", kind))
    return entries


def _cached_snapshot(repo: Path) -> Path | None:
    ref = repo / "refs" / "main"
    if ref.is_file():
        snapshot = repo / "snapshots" / ref.read_text().strip()
        return snapshot if snapshot.is_dir() else None
    snapshots = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime)
    return snapshots[-1] if snapshots else None
