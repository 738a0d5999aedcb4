"""What a reader would see wrong on a built page, checked two ways.

* :func:`static_problems` reads a page's HTML as built (no browser): TeX left raw outside
  the math elements MathJax typesets, and sections with nothing in them but their heading
  (and a collapsed code cell).
* :data:`LAYOUT_SCRIPT` runs in headless Chromium (:func:`layout_problems`) at the window's
  width (1280 px): a horizontal scrollbar on the page body, a table or caption cut off, a
  figure shown narrower than ``min_figure_px``, and TeX that MathJax left raw. The page is copied next to itself with the script added (so its relative
  assets still load), Chromium dumps the DOM after the script has written its findings into
  it, and the copy is removed.
"""
from __future__ import annotations

import html.parser
import json
import re
from pathlib import Path
from typing import Callable

#: TeX that should have been typeset: delimiters or common commands in plain text.
RAW_TEX = re.compile(r"\$\$|(?<![\w$])\$[^$\s][^$\n]{0,200}?\$(?![\w$])|\\\(|\\\[|\\(?:frac|begin\{|hat|mathrm|sum_|"
                     r"kappa|sigma|beta|alpha|lVert|text\{|cdot)\b")
#: Elements whose text is not prose: math before/after MathJax, code, scripts.
_SKIP_TAGS = {"script", "style", "pre", "code", "mjx-container", "math", "svg", "textarea"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_CONTENT_TAGS = {"img", "table", "svg", "iframe", "video", "mjx-container", "math"}


class _Section:
    def __init__(self, ident: str):
        self.ident, self.heading, self.text, self.content, self.children = ident, "", [], 0, 0


class _PageReader(html.parser.HTMLParser):
    """Collects prose text outside math/code (for raw TeX) and each section's own content."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict]] = []
        self.sections: list[_Section] = []
        self.open_sections: list[_Section] = []
        self.prose: list[str] = []
        self.skip = 0      # depth inside _SKIP_TAGS or math spans
        self.hidden = 0    # depth inside a collapsed code cell's input
        self.heading = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if tag in _VOID:
            if tag == "img" and self.open_sections and not self.hidden:
                self.open_sections[-1].content += 1
            return
        flags = []
        if tag in _SKIP_TAGS or "math" in classes:
            self.skip += 1
            flags.append("skip")
        if "cell_input" in classes or "above-input" in classes or "headerlink" in classes:
            self.hidden += 1
            flags.append("hidden")
        if tag in _HEADINGS:
            self.heading += 1
            flags.append("heading")
        if tag == "section":
            if self.open_sections:
                self.open_sections[-1].children += 1
            section = _Section(attrs.get("id", "?"))
            self.sections.append(section)
            self.open_sections.append(section)
            flags.append("section")
        if tag in _CONTENT_TAGS and self.open_sections and not self.hidden:
            self.open_sections[-1].content += 1
        if "math" in classes and self.open_sections:
            self.open_sections[-1].content += 1
        self.stack.append((tag, {"flags": flags}))

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        while self.stack:
            open_tag, info = self.stack.pop()
            for flag in info["flags"]:
                if flag == "skip":
                    self.skip -= 1
                elif flag == "hidden":
                    self.hidden -= 1
                elif flag == "heading":
                    self.heading -= 1
                elif flag == "section":
                    self.open_sections.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        if not data.strip():
            return
        if self.open_sections:
            section = self.open_sections[-1]
            if self.heading:
                if not self.hidden:
                    section.heading = f"{section.heading} {data.strip()}".strip()
            elif not self.hidden:
                section.text.append(data.strip())
        if not self.skip and not self.hidden:
            self.prose.append(data)


def static_problems(page_html: str, name: str = "page") -> list[str]:
    """Problems visible in a page's HTML without a browser: raw TeX in prose (outside math
    and code) and empty sections (a heading, then nothing but collapsed code).

    Returns one line per problem, prefixed with ``name``.
    """
    reader = _PageReader()
    reader.feed(page_html)
    reader.close()
    problems = []
    for chunk in reader.prose:
        match = RAW_TEX.search(chunk)
        if match:
            start = max(0, match.start() - 30)
            problems.append(f"{name}: raw TeX in the text: {' '.join(chunk[start:match.end() + 30].split())!r}")
    for section in reader.sections:
        if not section.children and not section.content and not "".join(section.text).strip():
            problems.append(f"{name}: section {section.heading or section.ident!r} is empty")
    return problems


#: Runs in the page once it (and MathJax) has loaded; writes a JSON list of problems into
#: <script type="application/json" id="faceexp-check-result">. MIN_FIGURE_PX is replaced.
LAYOUT_SCRIPT = r"""
<script>
(function () {
  var MIN_FIGURE_PX = __MIN_FIGURE_PX__;
  var RAW_TEX = /\$\$|\\\(|\\\[|\\(frac|begin\{|hat|mathrm|sum_|kappa|sigma|beta|alpha|lVert|text\{|cdot)\b/;
  function scrolls(el) {
    var s = getComputedStyle(el).overflowX;
    return s === "auto" || s === "scroll";
  }
  function visible(el) {
    if (el.closest("details:not([open])")) return false;
    var r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  }
  function label(el) {
    var t = (el.querySelector && el.querySelector("caption") || el).textContent || "";
    return t.replace(/\s+/g, " ").trim().slice(0, 60);
  }
  function run() {
    var problems = [];
    var root = document.scrollingElement || document.documentElement;
    if (root.scrollWidth > window.innerWidth + 1) {
      problems.push("the page scrolls sideways: " + root.scrollWidth + " px wide in a " + window.innerWidth + " px window");
    }
    var article = document.querySelector(".bd-article") || document.querySelector("main") || document.body;
    var right = article.getBoundingClientRect().right;
    article.querySelectorAll("table").forEach(function (table) {
      if (!visible(table)) return;
      var el = table, scroller = null;
      while (el && el !== article.parentElement) {
        if (scrolls(el)) { scroller = el; break; }
        el = el.parentElement;
      }
      var r = table.getBoundingClientRect();
      if (!scroller && r.right > right + 2) {
        problems.push("table cut off at the right edge (" + Math.round(r.right - right) + " px): " + label(table));
      }
    });
    article.querySelectorAll("caption, figcaption, .caption").forEach(function (cap) {
      if (!visible(cap)) return;
      var s = getComputedStyle(cap);
      if ((s.overflow === "hidden" || s.textOverflow === "ellipsis" || s.whiteSpace === "nowrap")
          && cap.scrollWidth > cap.clientWidth + 2) {
        problems.push("caption clipped: " + label(cap));
      }
    });
    article.querySelectorAll("img").forEach(function (img) {
      if (!visible(img)) return;
      var w = img.getBoundingClientRect().width;
      if (w < MIN_FIGURE_PX) {
        problems.push("figure shown " + Math.round(w) + " px wide (under " + MIN_FIGURE_PX + " px): " +
                      (img.getAttribute("alt") || img.getAttribute("src") || "").slice(0, 60));
      }
    });
    var walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT, null);
    var node;
    while ((node = walker.nextNode())) {
      var p = node.parentElement;
      if (!p || p.closest("mjx-container, script, style, pre, code, .highlight, textarea, mjx-assistive-mml")) continue;
      var m = RAW_TEX.exec(node.nodeValue);
      if (m) problems.push("raw TeX in the text: " + node.nodeValue.replace(/\s+/g, " ").trim().slice(0, 80));
    }
    var out = document.createElement("script");
    out.type = "application/json";
    out.id = "faceexp-check-result";
    out.textContent = JSON.stringify(problems);
    document.body.appendChild(out);
  }
  function start() {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise.then(function () { setTimeout(run, 0); });
    } else {
      setTimeout(run, 0);
    }
  }
  if (document.readyState === "complete") start(); else window.addEventListener("load", start);
})();
</script>
"""

_RESULT = re.compile(r'<script type="application/json" id="faceexp-check-result">(.*?)</script>', re.S)


def layout_problems(page: Path, dump_dom: Callable[[Path], str], *, min_figure_px: int = 240,
                    name: str | None = None) -> list[str]:
    """What :data:`LAYOUT_SCRIPT` finds on ``page`` in a browser.

    Parameters
    ----------
    page : Path
        A built HTML page; a copy with the script is written next to it and removed after.
    dump_dom : callable
        ``dump_dom(path) -> str``: the DOM after the page has loaded (headless Chromium's
        ``--dump-dom`` at the window's width, see :func:`book.browser.dump_dom`).
    min_figure_px : int
        A figure shown narrower than this is reported.
    """
    page = Path(page)
    name = name or page.stem
    text = page.read_text(encoding="utf-8")
    script = LAYOUT_SCRIPT.replace("__MIN_FIGURE_PX__", str(int(min_figure_px)))
    probe = page.with_name(f".{page.stem}.faceexp-check.html")
    probe.write_text(text.replace("</body>", script + "</body>", 1) if "</body>" in text else text + script,
                     encoding="utf-8")
    try:
        dom = dump_dom(probe)
    finally:
        probe.unlink(missing_ok=True)
    match = _RESULT.search(dom)
    if match is None:
        return [f"{name}: the layout check did not run in the browser (no result in the DOM)"]
    return [f"{name}: {problem}" for problem in json.loads(match.group(1))]
