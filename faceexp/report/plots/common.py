"""What every figure shares: the pose-pair order, the removal methods' styles, the caption
line, image layout and the heatmap overlay."""
from __future__ import annotations

import numpy as np

#: Order of the pose pairs in legends and tables.
POSE_PAIR_ORDER = ("F-F", "3/4-3/4", "P-P", "F-3/4", "F-P", "3/4-P", "overall")
#: Line style of each removal method.
METHOD_STYLE = {
    "significant": dict(color="C3", ls="-", marker="o"),
    "random-pixels": dict(color="C0", ls="--", marker="s"),
    "random-superpixels": dict(color="C2", ls=":", marker="^"),
}


def add_caption(fig, source: str | None):
    """Write ``source`` (what data and model made the figure) under ``fig``; returns ``fig``."""
    if source:
        fig.text(0.01, 0.005, source, fontsize=7, color="0.35", ha="left", va="bottom",
                 wrap=True)
    return fig


def as_hwc(image) -> np.ndarray:
    """An image as (H, W, 3) float32 in [0, 1] (a (3, H, W) image is transposed)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    return np.clip(image, 0, 1)


def overlay(image, heatmap, *, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """:func:`faceexp.evaluate.heatmaps.overlay`, clipping both inputs to [0, 1] first."""
    from faceexp.evaluate.heatmaps import overlay as _overlay

    return _overlay(as_hwc(image), np.clip(np.asarray(heatmap, dtype=np.float32), 0, 1),
                    alpha=alpha, cmap=cmap)


def hide_axes(ax):
    """No ticks and no frame: ``ax`` shows an image only."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)

