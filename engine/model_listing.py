"""The ``list_models`` job: the LDM3D models on this machine, for the model picker."""

from __future__ import annotations

from dataclasses import dataclass, field

from .diffusion.sources import find_models
from .progress import Reporter


@dataclass
class ModelsRequest:
    models_dir: str = ""
    cache_dir: str = ""


@dataclass
class ModelsResult:
    sources: list[str] = field(default_factory=list)  # what the generate job's ``model`` takes
    labels: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)


def list_models(request: ModelsRequest, report: Reporter) -> ModelsResult:
    result = ModelsResult()
    for entry in find_models(request.models_dir, request.cache_dir):
        result.sources.append(entry.source)
        result.labels.append(entry.label)
        result.kinds.append(entry.kind)
    report.step("Models listed")
    return result
