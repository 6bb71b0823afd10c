"""Every list of named choices the user picks from, written once.

The engine checks requests against these lists, the operators turn them into
``EnumProperty`` items, the panels show their labels and ``batch.py`` offers
their command-line spellings (``DPMPP_2M`` ↔ ``dpmpp-2m``). Adding a choice
here adds it everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .errors import BadInput


@dataclass(frozen=True)
class Choice:
    id: str  # what requests and operator options carry
    label: str
    description: str
    cli_name: str = field(default="", kw_only=True)  # a command-line spelling other than the id's

    @property
    def cli(self) -> str:
        """The command-line spelling: lower case with hyphens."""
        return self.cli_name or self.id.lower().replace("_", "-")


C = TypeVar("C", bound=Choice)


class Choices(Generic[C]):
    """An ordered list of choices; the first is the default unless another is named."""

    def __init__(self, what: str, *choices: C, default: str = "") -> None:
        self.what = what
        self._by_id = {c.id: c for c in choices}
        self.default = default or choices[0].id
        assert self.default in self._by_id, f"{what}: default {self.default!r} is not a choice"

    def __iter__(self) -> Iterator[C]:
        return iter(self._by_id.values())

    def __contains__(self, choice_id: object) -> bool:
        return choice_id in self._by_id

    def __getitem__(self, choice_id: str) -> C:
        return self.get(choice_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    def items(self) -> list[tuple[str, str, str]]:
        """``EnumProperty`` items."""
        return [(c.id, c.label, c.description) for c in self]

    @property
    def cli_names(self) -> list[str]:
        return [c.cli for c in self]

    def from_cli(self, name: str) -> str:
        """The id of a command-line spelling (``argparse`` has already checked it is one of :attr:`cli_names`)."""
        return next(c.id for c in self if c.cli == name)

    def get(self, choice_id: str) -> C:
        """The choice, or :class:`BadInput` naming the ones there are."""
        try:
            return self._by_id[choice_id]
        except KeyError:
            raise BadInput(f"Unknown {self.what} {choice_id!r} (choose from {', '.join(self._by_id)})") from None


@dataclass(frozen=True)
class Scheduler(Choice):
    steps: int  # the step count it is usually run at
    diffusers_class: str  # the diffusers scheduler that runs it
    settings: tuple[tuple[str, object], ...] = ()  # over the model's scheduler config


@dataclass(frozen=True)
class Layout(Choice):
    blender_mode: str  # Blender's stereo display mode ("" for one eye)
    spatial_media: str  # the spatial-media metadata's stereo mode
    eyes: tuple[int, int]  # eye images across and down a frame


@dataclass(frozen=True)
class Resolution(Choice):
    eye_width: int  # one eye's image width; 0: the user's own


@dataclass(frozen=True)
class VideoProjection(Choice):
    field_of_view: tuple[float, float]  # degrees of longitude and latitude one eye covers; (0, 0): the rig's own
    layout: str  # the stereo layout (a STEREO_LAYOUTS id) used when none is chosen


SCHEDULERS: Choices[Scheduler] = Choices(
    "scheduler",
    Scheduler("DDIM", "DDIM", "Deterministic; the LDM3D paper's sampler (50 steps)", 50, "DDIMScheduler"),
    Scheduler(
        "DPMPP_2M",
        "DPM-Solver++ 2M",
        "Good results in about 20 steps",
        20,
        "DPMSolverMultistepScheduler",
        (("algorithm_type", "dpmsolver++"), ("solver_order", 2)),
    ),
    Scheduler("EULER_A", "Euler Ancestral", "Adds fresh noise each step (about 30 steps)", 30, "EulerAncestralDiscreteScheduler"),
    Scheduler("UNIPC", "UniPC", "Good results in about 20 steps", 20, "UniPCMultistepScheduler"),
)

PROJECTIONS: Choices[Choice] = Choices(
    "projection",
    Choice("EQUIRECTANGULAR", "360° Panorama", "Equirectangular 2:1, wrapping seamlessly in longitude"),
    Choice("FLAT", "Flat Image", "An ordinary perspective image"),
)

UPSCALE_PROJECTIONS: Choices[Choice] = Choices(
    "upscale projection",
    Choice(
        "AUTO",
        "Auto",
        "As the input's meta.json says (a generated or captured panorama, or a flat image); without one, "
        "2:1 images are 360° panoramas and others flat",
    ),
    *PROJECTIONS,
)

DEPTH_MODES: Choices[Choice] = Choices(
    "depth mode",
    Choice(
        "AUTO",
        "Auto",
        "As the meta.json beside the file says (a capture's: Metric; LDM3D's and LDM3D-sr's: Relative); without one, by the file: "
        "float formats (EXR, .npy, HDR, float TIFF) are Metric, 8/16-bit images Relative",
    ),
    Choice("METRIC", "Metric", "Pixel values are distances along each ray, in scene units"),
    Choice("RELATIVE", "Relative", "Pixel values are disparity in [0, 1]: 1 near, 0 far"),
)

DEPTH_MAPPINGS: Choices[Choice] = Choices(
    "relative depth mapping",
    Choice("OFFSET", "Offset", "DepthFusion: 0.5 stays at the radius, 1 moves nearer, 0 farther, by the strength"),
    Choice("INVERSE", "Inverse Depth", "1/distance runs linearly from 1/far (value 0) to 1/near (value 1)"),
)

STEREO_LAYOUTS: Choices[Layout] = Choices(
    "stereo layout",
    Layout("TOP_BOTTOM", "Top-Bottom", "Left eye above the right (the usual 360° stereo layout)", "TOPBOTTOM", "top-bottom", (1, 2)),
    Layout("SIDE_BY_SIDE", "Side-by-Side", "Left eye beside the right", "SIDEBYSIDE", "left-right", (2, 1)),
    Layout("MONO", "Mono", "One eye only", "", "mono", (1, 1)),
)

VIDEO_PROJECTIONS: Choices[VideoProjection] = Choices(
    "video projection",
    VideoProjection(
        "RIG", "Rig's Own", "360° equirectangular for a 360° rig (2:1 eyes), perspective for a flat one", (0.0, 0.0), "TOP_BOTTOM"
    ),
    VideoProjection(
        "VR180",
        "VR180",
        "The front half sphere: 180°×180° square eyes, side-by-side unless chosen, tagged _180_sbs/_180_tb (needs a 360° rig)",
        (180.0, 180.0),
        "SIDE_BY_SIDE",
    ),
)

VIDEO_RESOLUTIONS: Choices[Resolution] = Choices(
    "video resolution",
    Resolution("VR_4K", "VR 4K", "4096 px per eye: 4096×4096 top-bottom 360°", 4096),
    Resolution("VR_2K", "VR 2K", "2048 px per eye: 2048×2048 top-bottom 360°", 2048),
    Resolution("HD", "HD", "1024 px per eye", 1024),
    Resolution("PREVIEW", "Preview", "512 px per eye, for a quick look", 512),
    Resolution("CUSTOM", "Custom", "Eye width below", 0),
    default="VR_2K",
)

VIDEO_FORMATS: Choices[Choice] = Choices(
    "video format",
    Choice("MP4", "MP4 (H.264)", "One video file, through Blender's FFmpeg"),
    Choice("PNG", "PNG Sequence", "8-bit frames"),
    Choice("EXR", "EXR Sequence", "Float frames"),
)


@dataclass(frozen=True)
class ExportFormat(Choice):
    suffix: str  # the file's extension ("" for Auto: the file's own)
    animated: bool = False  # carries the stereo rig's camera path


EXPORT_FORMATS: Choices[ExportFormat] = Choices(
    "export format",
    ExportFormat("AUTO", "By Extension", "The format the file's extension names", ""),
    ExportFormat("GLB", "glTF Binary (.glb)", "One file: mesh, texture and camera path (web, game engines, headsets)", ".glb", True),
    ExportFormat("GLTF", "glTF Separate (.gltf)", "A .gltf with its .bin and texture beside it", ".gltf", True),
    ExportFormat("USDZ", "USDZ (.usdz)", "One zipped USD file with its texture (Apple AR Quick Look, Vision Pro)", ".usdz", True),
    ExportFormat("USDC", "USD (.usdc)", "A binary USD stage with its texture beside it (Omniverse, Houdini, Maya)", ".usdc", True),
    ExportFormat("SPLAT_PLY", "Gaussian Splats (.ply)", "3D Gaussian splats of the panorama, the reference code's .ply", ".ply"),
)


VIDEO_QUALITIES: Choices[Choice] = Choices(
    "render quality",
    Choice(
        "FAST", "Fast (Emission)", "For an emission-only world sphere: no bounces, few samples, Standard view (reproduces the panorama)"
    ),
    Choice("QUALITY", "Quality", "For scenes with lights: more samples, bounces and denoising"),
    Choice("SCENE", "Scene", "The scene's own render settings"),
)

EDGE_METHODS: Choices[Choice] = Choices(
    "edge method",
    Choice("CANNY", "Canny (3D-DST)", "Canny 100/200 on the rendered image, as 3D-DST"),
    Choice(
        "GEOMETRIC",
        "Geometric",
        "Exact silhouette, occlusion and crease edges from the depth and normal passes (1 sample, no path tracing)",
    ),
    Choice("BOTH", "Both", "The union of the two"),
)

KCF_BACKBONES: Choices[Choice] = Choices(
    "backbone",
    Choice("auto", "Auto", "ResNet-50 on a GPU with torchvision, else a small CNN"),
    Choice("resnet50", "ResNet-50", "As 3D-DST (needs torchvision)"),
    Choice("small", "Small CNN", "Fast, CPU-friendly"),
)

DEVICES: Choices[Choice] = Choices(
    "device",
    Choice("AUTO", "Auto", "Best available"),
    Choice("CPU", "CPU", ""),
    Choice("CUDA", "CUDA", "NVIDIA GPU"),
    Choice("MPS", "MPS", "Apple GPU"),
)

PRECISIONS: Choices[Choice] = Choices(
    "precision",
    Choice("AUTO", "Auto", "fp16 on GPUs that support it, fp32 on the CPU"),
    Choice("FP32", "Float 32", ""),
    Choice("FP16", "Float 16", ""),
    Choice("BF16", "BFloat 16", ""),
)

UPSCALE_SOURCES: Choices[Choice] = Choices(
    "upscale source",
    Choice("LAST_GENERATION", "Last Generation", "The last generated panorama (rgb.png and depth16.png)"),
    Choice("LAST_CAPTURE", "Last Capture", "The last captured panorama (rgb.png and depth16.png)"),
    Choice("FILES", "Files", "An RGB image and its depth (16-bit disparity, or distances) chosen below"),
)

IMAGE_PREPARATIONS: Choices[Choice] = Choices(
    "image preparation",
    Choice("AUTO", "Auto", "Cut the object out (by alpha, or a uniform background colour), centre it on white"),
    Choice("NONE", "None", "Only put an RGBA image on white and resize it"),
)

VIEW_SOURCES: Choices[Choice] = Choices(
    "view source",
    Choice("FILE", "Image File", "An object image file (transparent background, or a plain one)"),
    Choice("IMAGE", "Loaded Image", "An image already in this .blend"),
    Choice("OBJECT", "Selected Object", "The selected object(s), rendered from the front with a transparent film"),
    Choice("TEXT", "Text Only", "No image: MVDream makes the views from the prompt"),
)

TRAINING_LAYOUTS: Choices[Choice] = Choices(
    "view layout",
    Choice(
        "STAGGERED",
        "Staggered Orbit",
        "Evenly spaced around the target, stepping through three elevations (the one chosen and 15° either side) "
        "and three distances (1, 1.15 and 1.3 × the distance), so the view mapper learns both, as on DTU's cameras",
    ),
    Choice("ORBIT", "Orbit", "Evenly spaced around the target at one elevation and distance (the view mapper learns neither)"),
    Choice("HEMISPHERE", "Hemisphere", "Sampled over the upper hemisphere at one distance (seeded)"),
)


@dataclass(frozen=True)
class CameraParameterisation(Choice):
    entries: tuple[str, ...]  # what each of its numbers is, in order (for messages)


CAMERA_PARAMETERISATIONS: Choices[CameraParameterisation] = Choices(
    "camera parameterisation",
    CameraParameterisation(
        "SPHERICAL",
        "Spherical",
        "Azimuth, elevation and distance about the target: objects in Blender",
        ("cosine of the azimuth", "sine of the azimuth", "elevation", "distance"),
    ),
    CameraParameterisation(
        "DTU12",
        "DTU 3×4",
        "The 12 numbers of the projection matrix, as the original on DTU",
        tuple(f"projection entry ({row}, {column})" for row in range(1, 4) for column in range(1, 5)),
    ),
)


@dataclass(frozen=True)
class TrainingMode(Choice):
    augmentation: str  # the original's augmentation set for it (an AUGMENTATIONS id)


TRAINING_MODES: Choices[TrainingMode] = Choices(
    "training mode",
    TrainingMode("SCENE", "One Scene", "View and object mappers together on one posed set (the original's mode 2)", "STRONG"),
    TrainingMode("PRETRAIN", "Pre-train", "One shared view mapper, one object mapper per posed set (the original's mode 3)", "LIGHT"),
    TrainingMode(
        "SINGLE_VIEW",
        "Single View",
        "A pre-trained view mapper kept frozen; a new object mapper fitted to one image (or a few) and its camera (mode 5)",
        "STRONG",
    ),
)

AUGMENTATIONS: Choices[Choice] = Choices(
    "augmentation",
    Choice("AUTO", "As the Mode", "The original's set for the training mode: Strong for one scene or one view, Light for pre-training"),
    Choice("STRONG", "Strong", "Colour jitter, blur, ±10° rotation, 70–130% crops (the original's single-scene set)"),
    Choice("LIGHT", "Light", "Colour jitter, blur, 95–105% crops (the original's pre-training set)"),
    Choice("NONE", "None", "The images as they are"),
)

CAPTURE_ORIGINS: Choices[Choice] = Choices(
    "capture point",
    Choice("AUTO", "Auto", "The active camera's location, or the 3D cursor when there is no camera"),
    Choice("CAMERA", "Camera", "The active camera's location"),
    Choice("CURSOR", "3D Cursor", "The 3D cursor"),
    Choice("LOCATION", "Location", "The location given below"),
)

SPHERE_PLACES: Choices[Choice] = Choices(
    "place",
    Choice("ORIGIN", "World Origin", "The centre at (0, 0, 0)"),
    Choice("CURSOR", "3D Cursor", "The centre at the 3D cursor"),
)

INIT_SOURCES: Choices[Choice] = Choices(
    "init source",
    Choice("NONE", "Text Only", "Generate from the prompt alone"),
    Choice("LAST_CAPTURE", "Last Capture", "img2img from the last captured panorama and its depth"),
    Choice("FILES", "Files", "img2img from the RGB and depth files below"),
)

RIG_MODES: Choices[Choice] = Choices(
    "rig mode",
    Choice("SPHERICAL", "360° Stereo", "Equirectangular camera rendering omni-directional stereo (one image per eye covering the sphere)"),
    Choice("FLAT", "Flat Stereo", "Perspective stereo pair"),
)

RIG_PLACES: Choices[Choice] = Choices(
    "rig place",
    Choice("AUTO", "Auto", "The world sphere's centre, else the 3D cursor"),
    Choice("SPHERE", "World Sphere", "The centre of the world sphere (the named one, else the active or only one)"),
    Choice("CURSOR", "3D Cursor", "The 3D cursor"),
)

CONVERGENCE_MODES: Choices[Choice] = Choices(
    "convergence mode",
    Choice("OFFAXIS", "Off-Axis", "Parallel cameras with shifted frustums (comfortable, no keystone)"),
    Choice("PARALLEL", "Parallel", "Parallel cameras, no convergence"),
    Choice("TOE", "Toe-in", "Cameras rotated toward the convergence point"),
)

CAMERA_MOVES: Choices[Choice] = Choices(
    "camera move",
    Choice("DOLLY", "Dolly", "Out from the centre along the view and back"),
    Choice("ORBIT", "Orbit", "Circle around the centre"),
    Choice("SWAY", "Sway", "Side to side through the centre"),
    Choice("FIGURE8", "Figure Eight", "Side to side with a forward-back beat"),
    Choice("LOOK", "Look Around", "Turn in place (rotation only)"),
    Choice("CUSTOM", "Custom", "Keep the rig's own keyframes; only set the frame range and check the safe radius", cli_name="keep"),
)

EASINGS: Choices[Choice] = Choices(
    "easing",
    Choice("EASE_IN_OUT", "Ease In/Out", "Start and stop gently"),
    Choice("LINEAR", "Linear", "Constant speed"),
)

VIDEO_LAYOUTS: Choices[Choice] = Choices(
    "video layout",
    Choice("AUTO", "As the Projection", "Top-bottom for 360°, side-by-side for VR180"),
    *(Choice(layout.id, layout.label, layout.description) for layout in STEREO_LAYOUTS),
)

DST_OBJECT_SOURCES: Choices[Choice] = Choices(
    "objects",
    Choice("SELECTED", "Selected", "The selected mesh objects (from the command line: every visible mesh, unless --objects names them)"),
    Choice("COLLECTION", "Collection", "Every mesh object in a collection"),
)

AZIMUTH_RANGES: Choices[Choice] = Choices(
    "azimuth range",
    Choice("FULL", "Full Circle", "Uniform on [0°, 360°)"),
    Choice("HALF", "Half Circle", "Uniform on [0°, 180°): for objects whose two sides look alike"),
)

POLAR_PRESETS: Choices[Choice] = Choices(
    "elevation preset",
    Choice("WIDE", "Around the Horizon", "3D-DST: polar angle ~ N(90°, 30°) on [0°, 180°]"),
    Choice("HIGH", "From Above", "3D-DST: polar angle ~ N(60°, 20°) on [0°, 180°]"),
    Choice("CUSTOM", "Custom", "Truncated normal with the mean, spread and range below"),
)

#: What ``--torch`` takes: AUTO picks from the machine
TORCH_BUILDS = Choices(
    "torch build",
    Choice(
        "AUTO",
        "Auto",
        "The build that fits this machine: CUDA for an NVIDIA driver, ROCm on Linux with AMD, MPS on Apple silicon, else CPU",
    ),
    Choice("CPU", "CPU", "The CPU build (any machine; slow for models)"),
    Choice("CUDA", "CUDA", "NVIDIA GPUs: the CUDA build for the installed driver"),
    Choice("ROCM", "ROCm", "AMD GPUs on Linux"),
    Choice("MPS", "MPS", "Apple silicon's GPU (the default macOS build)"),
)
