"""The ``list_models`` job: the LDM3D models on this machine, for the model picker."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..diffusion.sources import ModelAccess, find_models
from ..progress import Reporter


@dataclass
class ModelsRequest:
    access: ModelAccess = field(default_factory=ModelAccess)  # only its folders are read


@dataclass
class ModelsResult:
    sources: list[str] = field(default_factory=list)  # what the generate job's ``model`` takes
    labels: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)


def list_models(request: ModelsRequest, report: Reporter) -> ModelsResult:
    result = ModelsResult()
    for entry in find_models(request.access.models_dir, request.access.cache_dir):
        result.sources.append(entry.source)
        result.labels.append(entry.label)
        result.kinds.append(entry.kind)
    report.step("Models listed")
    return result
