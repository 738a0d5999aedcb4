"""While ``book/build.py`` executes a notebook, what the notebook prints and its tqdm bars
reach the terminal (one prefixed line at a time, a bar's state at most every ``interval``
seconds), and the executed copy keeps no progress bar."""
from __future__ import annotations

import io
import re

import nbformat
from conftest import load_build_script
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

build = load_build_script()


def _tqdm_text() -> str:
    """What tqdm draws on a (non-terminal) stream: nested bars and a tqdm.write line."""
    from tqdm import tqdm

    stream = io.StringIO()
    print("loading", file=stream)
    for epoch in tqdm(range(2), desc="train mobilenetv2", unit="epoch", file=stream, mininterval=0):
        for _ in tqdm(range(3), desc=f"epoch {epoch + 1}", leave=False, unit="batch", file=stream,
                      mininterval=0):
            pass
        tqdm.write(f"epoch {epoch + 1} done", file=stream)
    print("trained", file=stream)
    return stream.getvalue()


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_relay_prefixes_lines_and_keeps_only_a_few_states_of_each_bar():
    text = _tqdm_text()
    stream, clock = io.StringIO(), _Clock()
    relay = build.ProgressRelay("02_training", stream, interval=10.0, clock=clock)
    cell = new_code_cell("# train\nstudy = report.setup_notebook(profile, models)\nstudy")
    relay.cell_started(cell=cell, cell_index=3)
    for start in range(0, len(text), 23):  # chunks that cut lines and bars anywhere
        relay.stderr.write(text[start:start + 23])
    relay.cell_finished(cell=cell, cell_index=3)
    lines = _lines(stream)
    assert all(line.startswith("  02_training | ") for line in lines), lines
    shown = [line.removeprefix("  02_training | ") for line in lines]
    assert shown[0] == "In [1] study = report.setup_notebook(profile, models) ..."
    for plain in ("loading", "epoch 1 done", "epoch 2 done", "trained"):
        assert plain in shown, (plain, shown)
    assert shown.index("loading") < shown.index("epoch 1 done") < shown.index("trained")
    bars = [line for line in shown if "%|" in line]
    # the first state of each bar, then (the clock stands still) only the last states
    assert bars[0].startswith("train mobilenetv2:   0%|") and bars[1].startswith("epoch 1:   0%|")
    assert any(b.startswith("train mobilenetv2: 100%|") and "2/2" in b for b in bars), bars
    assert any(b.startswith("epoch 2: 100%|") and "3/3" in b for b in bars), bars
    assert len(bars) == 4, bars
    assert not any("\r" in line or "\x1b" in line for line in lines)


def test_relay_shows_a_bar_again_once_the_interval_has_passed():
    stream, clock = io.StringIO(), _Clock()
    relay = build.ProgressRelay("x", stream, interval=10.0, clock=clock)
    states = [f"\rexplain:  {10 * k:2d}%|#         | {k}/10 [00:0{k}<00:09, 1.00image/s]" for k in range(1, 6)]
    for state in states[:3]:
        relay.stderr.write(state)
    clock.now = 10.0
    relay.stderr.write(states[3])
    relay.stderr.write(states[4])
    relay.close()
    assert [line.split("|")[1].strip() for line in _lines(stream)] == ["explain:  10%", "explain:  40%", "explain:  50%"]


def test_strip_progress_bars_keeps_the_printed_lines_only():
    # As the kernel sends them: a stream output per write, and the last newline of the
    # bar (tqdm's close) after a line printed on stdout.
    text = _tqdm_text().removesuffix("trained\n")
    assert text.endswith("\n")
    chunks = re.split(r"(?<=[\n\x1b]\[A)|(?<=\n)|(?=\r)", text[:-1])
    chunks = [chunk for chunk in chunks if chunk]
    assert len(chunks) > 20
    nb = new_notebook(cells=[new_markdown_cell("# x"), new_code_cell("print(1)", outputs=[
        new_output("stream", name="stderr", text="no bar here\n"),
    ]), new_code_cell("train()", outputs=[
        new_output("stream", name="stdout", text="kept as it is\n"),
        *(new_output("stream", name="stderr", text=chunk) for chunk in chunks),
        new_output("stream", name="stdout", text="final val accuracy 0.95\n"),
        new_output("stream", name="stderr", text="\n"),
        new_output("display_data", data={"text/plain": "figure"}),
    ])])
    assert build.strip_progress_bars(nb) > 0
    assert nb.cells[1].outputs[0].text == "no bar here\n"
    outputs = nb.cells[2].outputs
    assert [(o.output_type, o.get("name")) for o in outputs] == [
        ("stream", "stdout"), ("stream", "stderr"), ("stream", "stdout"), ("display_data", None)]
    assert outputs[0].text == "kept as it is\n"
    assert outputs[1].text == "loading\nepoch 1 done\nepoch 2 done\n"
    assert outputs[2].text == "final val accuracy 0.95\n"
    assert build.strip_progress_bars(nb) == 0


def test_executed_notebook_streams_prints_and_tqdm_but_stores_no_bar(tmp_path):
    source = tmp_path / "tiny_progress.ipynb"
    nbformat.write(new_notebook(
        cells=[new_markdown_cell("# Tiny"),
               new_code_cell("profile = 'demo'\nvalue = 1", metadata={"tags": ["parameters"]}),
               new_code_cell("import os, sys\nprint('progress env', os.environ.get('FACEEXP_BOOK_PROGRESS'))\n"
                             "for step in range(value):\n    print(f'step {step + 1} of {value}')"),
               new_code_cell("from tqdm import tqdm\n"
                             "for i in tqdm(range(value), desc='images explained', unit='image', mininterval=0):\n"
                             "    pass\nprint('all explained', file=sys.stderr)")],
        metadata={"kernelspec": {"name": "faceexp", "display_name": "faceexp", "language": "python"}}),
        str(source))
    executed = tmp_path / "executed" / "tiny_progress.ipynb"
    stream = io.StringIO()
    result = build.execute_notebook(source, executed, {"value": 3}, package="fixed", progress=stream,
                                    interval=1e9)
    assert result.status == "executed"
    shown = [line.removeprefix("  tiny_progress | ") for line in _lines(stream)]
    assert len(shown) == len(_lines(stream)), "every line names the notebook"
    assert "progress env 1" in shown
    assert [line for line in shown if line.startswith("step ")] == ["step 1 of 3", "step 2 of 3", "step 3 of 3"]
    bars = [line for line in shown if line.startswith("images explained:")]
    assert bars[0].startswith("images explained:   0%|") and "0/3" in bars[0], shown
    assert bars[-1].startswith("images explained: 100%|") and "3/3" in bars[-1], shown
    assert shown.index(bars[-1]) < shown.index("all explained")
    assert [line for line in shown if line.startswith("In [")] == [
        "In [1] profile = 'demo' ...", "In [2] value = 3", "In [3] import os, sys ...",
        "In [4] from tqdm import tqdm ..."]

    stored = [o for c in build.notebooks.read_notebook(executed).cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "stream"]
    text = "".join(o.text for o in stored)
    assert "step 3 of 3" in text and "all explained" in text
    assert "%|" not in text and "\r" not in text, text

    build.execute_notebook(source, executed, {"value": 3}, package="fixed", force=True)  # no relay
    text = "".join(o.text for c in build.notebooks.read_notebook(executed).cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream")
    assert "progress env None" in text, "without a relay the kernel is not asked for progress bars"


def test_build_py_streams_to_stdout_unless_quiet(monkeypatch, capsys):
    calls = []

    def fake_execute_profile(profile, **options):
        calls.append(options["progress"])
        return []

    def no_book(profile):
        raise FileNotFoundError("nothing executed")

    monkeypatch.setattr(build, "execute_profile", fake_execute_profile)
    monkeypatch.setattr(build, "publish", no_book)
    assert build.main(["--profile", "quick", "--only", "01"]) == 0
    assert build.main(["--profile", "quick", "--only", "01", "--quiet"]) == 0
    assert calls[0] is build.sys.stdout and calls[1] is None
