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


#: Attribute of a figure that holds its caption (the provenance line ``source=``).
CAPTION_ATTRIBUTE = "faceexp_caption"


def add_caption(fig, source: str | None):
    """Attach ``source`` (what data and model made the figure) to ``fig`` as its caption;
    returns ``fig``.

    Nothing is drawn into the image: the caption is text under it. In IPython the figure
    then displays as HTML, the PNG with the caption as a ``<figcaption>`` under it
    (:func:`figure_html`); :func:`figure_caption` and :func:`caption_markdown` return it.
    """
    if source:
        setattr(fig, CAPTION_ATTRIBUTE, str(source))
        _register_html_formatter()
    return fig


def figure_caption(fig) -> str | None:
    """The caption :func:`add_caption` attached to ``fig`` (None: none)."""
    return getattr(fig, CAPTION_ATTRIBUTE, None)


def caption_markdown(fig) -> str:
    """``fig``'s caption as a Markdown paragraph (empty string when it has none): the text a
    page prints under the figure."""
    text = figure_caption(fig)
    if not text:
        return ""
    for ch in ("\\", "*", "_", "`", "[", "]", "<", ">"):
        text = text.replace(ch, "\\" + ch)
    return f"*{text}*"


def figure_html(fig) -> str | None:
    """``fig`` as ``<figure>``: its PNG (embedded, at most the page's width) and its caption
    as ``<figcaption>``; None when it has no caption (IPython then shows the plain PNG)."""
    text = figure_caption(fig)
    if not text:
        return None
    import base64
    import html
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure class="faceexp-figure" style="margin:0">'
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(text, quote=True)}" '
            f'style="max-width:100%; height:auto"/>'
            f'<figcaption style="font-size:0.9em">{html.escape(text)}</figcaption></figure>')


_registered: list = []


def _register_html_formatter() -> None:
    # In IPython (a notebook), figures with a caption display through figure_html.
    if _registered:
        return
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from matplotlib.figure import Figure

    shell.display_formatter.formatters["text/html"].for_type(Figure, figure_html)
    _registered.append(shell)


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

