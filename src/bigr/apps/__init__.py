"""Zero-shot applications (bigr-spec.md §6): inpainting, outpainting, class-conditional
editing, class interpolation and enrichment. Each only prepares known codes, masks and the
condition for the one sampling loop in `bigr.sampler`; none retrains anything.
"""

from .editing import EDIT_SAMPLER, EditResult, edit, inpaint, outpaint, regenerate
from .enrich import ENRICH_SAMPLER, EnrichResult, enrich, lattice_groups
from .interpolate import INTERPOLATE_SAMPLER, interpolate
from .masks import RULES, box_mask, token_mask

__all__ = [
    "EDIT_SAMPLER",
    "ENRICH_SAMPLER",
    "INTERPOLATE_SAMPLER",
    "RULES",
    "EditResult",
    "EnrichResult",
    "box_mask",
    "edit",
    "enrich",
    "inpaint",
    "interpolate",
    "lattice_groups",
    "outpaint",
    "regenerate",
    "token_mask",
]
