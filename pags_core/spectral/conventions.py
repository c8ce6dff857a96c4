"""The two metric conventions held as data.

``iclr2023`` follows the ICLR-2023 code (binary graph only), ``neurips2023`` the NeurIPS-2023 code (binary and
weighted graph, full-spectrum coordinate).  Everything that differs between the two papers lives in one
:class:`Convention` record, so the metric code never branches on a convention *name*.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Convention", "CONVENTIONS", "BOUNDS", "get_convention", "check_bound", "check_softness"]


@dataclass(frozen=True)
class Convention:
    """What a convention decides.

    Attributes
    ----------
    name:
        ``"iclr2023"`` or ``"neurips2023"``.
    layer_left:
        Which side is "left" for the whole-layer gate: ``"inputs"`` (ICLR) or ``"outputs"`` (NeurIPS whole-layer call).
    layer_min_left, layer_left_strict:
        The left mean degree must be ``>= layer_min_left`` (``> `` when strict).
    layer_min_right, layer_right_strict:
        Same for the right mean degree (ICLR ``>= 3``; NeurIPS ``> 1``).
    group_min_size:
        Degree groups smaller than this are dropped (ICLR 3, NeurIPS 2). The threshold is on the group *size*.
    group_min_right, group_right_strict:
        Gate on the mean fan-in of the outputs a group touches (ICLR ``>= 3``; NeurIPS ``> 1``).  Both conventions also
        ask for the group's input fan-out ``d >= 3``.
    group_weight:
        ``"none"`` (plain mean over groups) or ``"cheeger"`` (c_g = max(n_g, r_g) / (n_g + r_g - 1)).
    failed_value:
        What a failing whole-layer gate gives for Δr and λ (NaN for ICLR, +inf for NeurIPS).
    no_group_value:
        What Δr_imdb / λ_imsg are when no group survives (NaN for ICLR, 0 for NeurIPS).
    weighted:
        Whether the convention scores the weighted graph |W ⊙ M| (NeurIPS) or the binary graph only (ICLR).
    """

    name: str
    layer_left: str
    layer_min_left: float
    layer_left_strict: bool
    layer_min_right: float
    layer_right_strict: bool
    group_min_size: int
    group_min_degree: float
    group_min_right: float
    group_right_strict: bool
    group_weight: str
    failed_value: float
    no_group_value: float
    weighted: bool

    def layer_gate(self, mean_in_fanout, mean_out_fanin):
        """Whole-layer validity gate from the mean fan-out of surviving inputs and mean fan-in of surviving outputs.

        Works elementwise on numpy arrays as well as on floats."""
        if self.layer_left == "outputs":
            left, right = mean_out_fanin, mean_in_fanout
        else:
            left, right = mean_in_fanout, mean_out_fanin
        ok_l = (left > self.layer_min_left) if self.layer_left_strict else (left >= self.layer_min_left)
        ok_r = (right > self.layer_min_right) if self.layer_right_strict else (right >= self.layer_min_right)
        return ok_l & ok_r

    def group_gate(self, d, mean_out_fanin):
        """Degree-group gate: input fan-out ``d >= 3`` and the mean fan-in of the touched outputs (``> 1`` or ``>= 3``)."""
        ok_r = (mean_out_fanin > self.group_min_right) if self.group_right_strict else (mean_out_fanin >= self.group_min_right)
        return (d >= self.group_min_degree) & ok_r

    def layer_left_degree(self, mean_in_fanout, mean_out_fanin):
        """The "left" mean degree of the whole layer in this convention's orientation (used by ``bound="regular"``)."""
        return mean_out_fanin if self.layer_left == "outputs" else mean_in_fanout


_ICLR = Convention(
    name="iclr2023", layer_left="inputs",
    layer_min_left=3.0, layer_left_strict=False, layer_min_right=3.0, layer_right_strict=False,
    group_min_size=3, group_min_degree=3.0, group_min_right=3.0, group_right_strict=False,
    group_weight="none", failed_value=math.nan, no_group_value=math.nan, weighted=False,
)
_NEURIPS = Convention(
    name="neurips2023", layer_left="outputs",
    layer_min_left=3.0, layer_left_strict=False, layer_min_right=1.0, layer_right_strict=True,
    group_min_size=2, group_min_degree=3.0, group_min_right=1.0, group_right_strict=True,
    group_weight="cheeger", failed_value=math.inf, no_group_value=0.0, weighted=True,
)

_BY_NAME = {c.name: c for c in (_ICLR, _NEURIPS)}
#: Valid convention names.
CONVENTIONS: tuple[str, ...] = tuple(_BY_NAME)
#: Valid Ramanujan-bound forms; ``"mean_degree"`` is an unverified paper-notation guess.
BOUNDS: tuple[str, ...] = ("bipartite", "regular", "spectral", "mean_degree")


def get_convention(convention) -> Convention:
    """Return the :class:`Convention` for a name (or pass a :class:`Convention` through).

    Raises ``ValueError`` listing the valid names for an unknown one."""
    if isinstance(convention, Convention):
        return convention
    try:
        if not isinstance(convention, str):
            raise KeyError(convention)
        return _BY_NAME[convention.lower()]
    except KeyError:
        raise ValueError(f"unknown spectral convention {convention!r}; valid conventions: {', '.join(CONVENTIONS)}") from None


def check_bound(bound: str) -> str:
    """Validate a bound name; raises ``ValueError`` listing the valid ones."""
    if not isinstance(bound, str) or bound not in BOUNDS:
        raise ValueError(f"unknown Ramanujan bound {bound!r}; valid bounds: {', '.join(BOUNDS)}")
    return bound


def check_softness(softness) -> float:
    """Validate the softness constant s added to Δr (a finite real number); returns it as a float."""
    import numbers

    if isinstance(softness, bool) or not isinstance(softness, numbers.Real) or not math.isfinite(float(softness)):
        raise ValueError(f"softness={softness!r}: expected a finite real number (the constant s added to Δr; default 0)")
    return float(softness)
