"""Images read as a viewer shows them, and limits before work (issue 22, cases 5-8 and 9's pixel cap).

Every image is built offline in ``tmp_path`` from the ORL faces. One decoder
(:func:`faceexp.data.preprocessing.load_image`, then
:func:`faceexp.data.preprocessing.to_rgb`) serves the paper's crop, the recognisers'
alignment and the pose estimate: EXIF orientation applied, 16-bit images scaled to 8
bits, a pixel cap checked from the header, non-regular files refused without being
opened; images too small for MTCNN are per-image failures naming the minimum.
"""
from __future__ import annotations

import os
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from faceexp.cli import main
from faceexp.data import decoding
from faceexp.data import preprocessing as fpre
from faceexp.data.pose import mtcnn_min_side
from faceexp.data.folders import IMAGE_EXTENSIONS, orl_root, scan_identity_folders
from faceexp.data.skips import SkippedFileWarning, SkipReport
from faceexp.recognisers import alignment

#: The face every test starts from: ORL s1/1.pgm, 92x112 grey.
FACE = ("s1", "1.pgm")


def _face() -> np.ndarray:
    return np.asarray(Image.open(orl_root() / FACE[0] / FACE[1]))


def _reason(report: SkipReport) -> str:
    (entry,) = list(report)
    return entry[1]


@pytest.fixture(scope="module")
def sface():
    from faceexp import recognisers

    return recognisers.load("sface")


def _cosine(a, b) -> float:
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# --------------------------------------------------------------------------- #
# Case 5: EXIF orientation
# --------------------------------------------------------------------------- #
def _exif6_jpeg(path) -> np.ndarray:
    """The ORL face as a JPEG whose pixels are stored turned 90 degrees counter-clockwise,
    with EXIF orientation 6 (a viewer turns it 90 degrees clockwise: upright). Returns the
    upright face the viewer shows (grey, (112, 92))."""
    face = _face()
    stored = Image.fromarray(face).convert("RGB").transpose(Image.Transpose.ROTATE_90)
    assert stored.size == (112, 92)  # stored lying on its side
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, exif=exif, quality=95)
    return face


def test_exif_orientation_is_applied_by_the_decoder(tmp_path):
    path = tmp_path / "turned.jpg"
    face = _exif6_jpeg(path)
    image = fpre.load_image(path)
    assert image.size == (92, 112)  # upright: width 92, height 112, as the PGM
    grey = np.asarray(image.convert("L"), dtype=float)
    # JPEG at quality 95: a small error per pixel, nothing like a turned face
    assert np.abs(grey - face).mean() < 3 and np.abs(grey - face).max() < 40
    # The same upright pixels through the recognisers' decoder and the paper's crop
    rgb = alignment.to_rgb_uint8(str(path))
    assert rgb.shape == (112, 92, 3)
    assert np.abs(rgb[..., 0].astype(float) - face).mean() < 3
    expected = fpre.preprocessed_image(orl_root() / FACE[0] / FACE[1])
    assert np.abs(fpre.preprocessed_image(path) - expected).mean() < 3 / 255
    # Decoding twice (or an already upright in-memory image) does not turn it again
    assert np.array_equal(np.asarray(fpre.to_rgb(image)), np.asarray(image.convert("RGB")))


def test_exif_orientation_lets_sface_find_the_face(tmp_path, sface):
    path = tmp_path / "turned.jpg"
    _exif6_jpeg(path)
    turned = sface.align(str(path))  # raised "no face found" when the tag was ignored
    upright = sface.align(str(orl_root() / FACE[0] / FACE[1]))
    assert turned.shape == (112, 112, 3)
    embeddings = sface(np.stack([turned, upright]).transpose(0, 3, 1, 2)).numpy()
    assert _cosine(embeddings[0], embeddings[1]) > 0.9


# --------------------------------------------------------------------------- #
# Case 6: 16-bit images
# --------------------------------------------------------------------------- #
def _sixteen_bit_files(folder) -> dict:
    """The ORL face (8-bit ``a``) written as 16-bit and float files of several kinds."""
    a = _face()
    files = {}
    files["png-I;16"] = folder / "face16.png"
    Image.fromarray(a.astype(np.uint16) * 257).save(files["png-I;16"])
    files["tiff-I;16"] = folder / "face16.tif"
    Image.fromarray(a.astype(np.uint16) * 257).save(files["tiff-I;16"])
    files["pgm-65535"] = folder / "face16.pgm"
    files["pgm-65535"].write_bytes(b"P5\n92 112\n65535\n"
                                   + (a.astype(">u2") * 257).tobytes())
    files["pgm-4095"] = folder / "face12.pgm"  # 12-bit data
    twelve = np.round(a.astype(float) * 4095 / 255).astype(">u2")
    files["pgm-4095"].write_bytes(b"P5\n92 112\n4095\n" + twelve.tobytes())
    files["tiff-F-unit"] = folder / "face_unit.tif"
    Image.fromarray(a.astype(np.float32) / 255).save(files["tiff-F-unit"])
    files["tiff-F-255"] = folder / "face_255.tif"
    Image.fromarray(a.astype(np.float32)).save(files["tiff-F-255"])
    return files


def test_sixteen_bit_png_spans_the_whole_range(tmp_path):
    path = _sixteen_bit_files(tmp_path)["png-I;16"]
    with Image.open(path) as raw:
        assert raw.mode == "I;16"
        values = np.asarray(raw)
    assert values.max() == 257 * _face().max() and values.max() > 255 * 200


@pytest.mark.parametrize("kind", ["png-I;16", "tiff-I;16", "pgm-65535", "pgm-4095",
                                  "tiff-F-unit", "tiff-F-255"])
def test_high_bit_depth_images_decode_to_the_8_bit_face(tmp_path, kind):
    face = _face().astype(int)
    path = _sixteen_bit_files(tmp_path)[kind]
    image = fpre.load_image(path)
    assert image.mode == "L" and image.size == (92, 112)
    assert np.abs(np.asarray(image, dtype=int) - face).max() <= 1
    # the recognisers' decoder: was white (mean 255) for the 16-bit PNG
    rgb = alignment.to_rgb_uint8(str(path)).astype(int)
    assert np.abs(rgb - face[..., None]).max() <= 1
    # the paper's crop
    expected = fpre.preprocessed_image(orl_root() / FACE[0] / FACE[1])
    assert np.abs(fpre.preprocessed_image(path) - expected).max() <= 1.5 / 255


def test_sixteen_bit_png_through_every_consumer(tmp_path, sface):
    from faceexp.data.pose import estimate_pose

    original = orl_root() / FACE[0] / FACE[1]
    path = _sixteen_bit_files(tmp_path)["png-I;16"]
    # recogniser alignment: the same aligned face as the 8-bit file
    aligned16, aligned8 = sface.align(str(path)), sface.align(str(original))
    assert np.abs(aligned16 - aligned8).max() <= 1 / 255 + 1e-6
    # pose: the same landmarks, hence the same yaw proxy
    poses = estimate_pose([str(original), str(path)], progress=False)
    assert poses["detected"].all()
    assert poses["yaw_proxy"].iloc[1] == pytest.approx(poses["yaw_proxy"].iloc[0], abs=1e-3)
    # the paper's crop of an in-memory 16-bit image (preprocess of Image.open)
    with Image.open(path) as raw:
        direct = fpre.preprocess(raw)
    np.testing.assert_allclose(direct, fpre.preprocess(Image.open(original)), atol=1 / 255 + 1e-6)


def test_float_image_outside_any_range_is_refused(tmp_path):
    path = tmp_path / "odd.tif"
    Image.fromarray(np.full((30, 30), 1000.0, np.float32)).save(path)
    report = SkipReport(warn=False)
    assert fpre.load_image(path, report=report) is None
    assert "float" in _reason(report) and "[0, 1]" in _reason(report)


# --------------------------------------------------------------------------- #
# Case 9: decoded pixels are capped from the header
# --------------------------------------------------------------------------- #
def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _header_only_png(path, width=10000, height=10000) -> None:
    """A valid-looking 8-bit grey PNG declaring ``width x height`` with one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                     + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any image is decoded (pixel data loaded)."""
    def refuse(self, *args, **kwargs):
        raise AssertionError(f"decoded {self.size} pixels: the cap must be checked first")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_pixel_cap_fails_fast_from_the_header(tmp_path, monkeypatch, no_decoding):
    monkeypatch.delenv(decoding.MAX_PIXELS_ENV, raising=False)
    path = tmp_path / "bomb.png"
    _header_only_png(path)
    assert path.stat().st_size < 1000
    report = SkipReport(warn=False)
    start = time.perf_counter()
    assert fpre.load_image(path, report=report) is None
    assert time.perf_counter() - start < 0.5
    reason = _reason(report)
    assert "10000x10000" in reason and "FACEEXP_MAX_PIXELS" in reason and "\n" not in reason
    with pytest.raises(ValueError, match=r"bomb\.png.*10000x10000.*FACEEXP_MAX_PIXELS"):
        fpre.preprocessed_image(path)
    with pytest.raises(ValueError, match=r"bomb\.png.*10000x10000.*FACEEXP_MAX_PIXELS"):
        alignment.to_rgb_uint8(str(path))


def test_pixel_cap_of_a_valid_large_png(tmp_path, monkeypatch):
    monkeypatch.delenv(decoding.MAX_PIXELS_ENV, raising=False)
    path = tmp_path / "big.png"
    Image.new("1", (10000, 10000)).save(path)  # 12 kB on disk, 100 megapixels
    report = SkipReport(warn=False)
    start = time.perf_counter()
    assert fpre.load_image(path, report=report) is None
    assert time.perf_counter() - start < 0.5
    assert decoding.DEFAULT_MAX_PIXELS == 40_000_000
    # raised by the argument or by the environment variable
    assert fpre.load_image(path, max_pixels=100_000_000).size == (10000, 10000)
    monkeypatch.setenv(decoding.MAX_PIXELS_ENV, "100000000")
    assert fpre.load_image(path).size == (10000, 10000)
    # and lowered: an ORL face (10304 pixels) over a cap of 10000
    face = orl_root() / FACE[0] / FACE[1]
    report = SkipReport(warn=False)
    assert fpre.load_image(face, max_pixels=10_000, report=report) is None
    assert "92x112" in _reason(report)


def test_pillow_bomb_limit_reads_as_the_cap(tmp_path, monkeypatch, no_decoding):
    """Pillow itself refuses, in Image.open, twice its MAX_IMAGE_PIXELS: said as the cap."""
    monkeypatch.delenv(decoding.MAX_PIXELS_ENV, raising=False)
    path = tmp_path / "huge.png"
    _header_only_png(path, 20000, 20000)
    report = SkipReport(warn=False)
    assert fpre.load_image(path, report=report) is None
    assert _reason(report).startswith("400000000 pixels (400.0 megapixels) exceed the cap of "
                                      "40000000 pixels")
    report = SkipReport(warn=False)
    assert fpre.load_image(path, report=report, max_pixels=10 ** 9) is None
    assert "Pillow's own limit" in _reason(report)


def test_probe_image_checks_without_decoding(tmp_path, monkeypatch, no_decoding):
    monkeypatch.delenv(decoding.MAX_PIXELS_ENV, raising=False)
    assert decoding.probe_image(orl_root() / FACE[0] / FACE[1]) == (92, 112)
    bomb = tmp_path / "bomb.png"
    _header_only_png(bomb)
    with pytest.raises(ValueError, match=r"^image file '.*bomb\.png': 10000x10000 pixels"):
        decoding.probe_image(bomb)
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    with pytest.raises(ValueError, match=r"text\.jpg': cannot be decoded \(not a JPEG, PNG") as info:
        decoding.probe_image(text)
    assert "BufferedReader" not in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="absent.png"):
        decoding.probe_image(tmp_path / "absent.png")


@pytest.mark.parametrize("value", ["many", "0", "-5", "1.5"])
def test_bad_pixel_cap_is_a_one_line_error(monkeypatch, value):
    monkeypatch.setenv(decoding.MAX_PIXELS_ENV, value)
    with pytest.raises(ValueError, match=f"FACEEXP_MAX_PIXELS.*{value}"):
        fpre.load_image(orl_root() / FACE[0] / FACE[1])
    monkeypatch.delenv(decoding.MAX_PIXELS_ENV)
    with pytest.raises(ValueError, match="max_pixels"):
        fpre.load_image(orl_root() / FACE[0] / FACE[1], max_pixels=0)


def test_explain_refuses_an_oversized_image_in_one_line(tmp_path, capsys, monkeypatch,
                                                       no_decoding):
    monkeypatch.delenv(decoding.MAX_PIXELS_ENV, raising=False)
    path = tmp_path / "bomb.png"
    _header_only_png(path)
    out = tmp_path / "out.npz"
    assert main(["explain", str(path), "--model", "mobilenetv2", "--out", str(out),
                 "--samples", "10", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faceexp explain: error: ") and "\n" not in err
    assert "bomb.png" in err and "10000x10000" in err and "FACEEXP_MAX_PIXELS" in err
    assert not out.exists()


# --------------------------------------------------------------------------- #
# Case 8: non-regular files are refused without being opened
# --------------------------------------------------------------------------- #
def _in_thread(function, timeout=20.0, unblock=None):
    """Run ``function()`` in a daemon thread; fail if it has not returned in ``timeout`` s."""
    result = {}

    def target():
        try:
            result["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        if unblock is not None:
            unblock()
        pytest.fail(f"blocked for more than {timeout} s")
    return result


def _unblock_fifo(path):
    def unblock():
        try:  # a writer lets a blocked reader's open return
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    return unblock


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "face.png"
    os.mkfifo(fifo)
    report = SkipReport(warn=False)
    result = _in_thread(lambda: fpre.load_image(fifo, report=report),
                        unblock=_unblock_fifo(fifo))
    assert result == {"value": None}
    assert "FIFO" in _reason(report) and "regular file" in _reason(report)
    result = _in_thread(lambda: fpre.preprocessed_image(fifo), unblock=_unblock_fifo(fifo))
    assert isinstance(result.get("error"), ValueError)
    assert "face.png" in str(result["error"]) and "FIFO" in str(result["error"])
    result = _in_thread(lambda: decoding.probe_image(fifo), unblock=_unblock_fifo(fifo))
    assert isinstance(result.get("error"), ValueError) and "FIFO" in str(result["error"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_explain_on_a_fifo_is_a_one_line_error(tmp_path, capsys):
    fifo = tmp_path / "face.png"
    os.mkfifo(fifo)
    out = tmp_path / "out.npz"
    result = _in_thread(lambda: main(["explain", str(fifo), "--out", str(out), "--samples",
                                      "10", "--quiet"]), timeout=60,
                        unblock=_unblock_fifo(fifo))
    assert result == {"value": 2}
    err = capsys.readouterr().err.strip()
    assert err.startswith("faceexp explain: error: ") and "\n" not in err
    assert "face.png" in err and "FIFO" in err
    assert not out.exists()


def test_other_non_regular_files(tmp_path):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    gone = tmp_path / "gone.png"
    gone.symlink_to(tmp_path / "nowhere.png")
    report = SkipReport(warn=False)
    assert fpre.load_image(folder, report=report) is None
    assert "directory" in _reason(report)
    with pytest.raises(FileNotFoundError, match=r"gone\.png.*symbolic link.*nowhere\.png"):
        fpre.load_image(gone)
    if os.path.exists("/dev/zero"):  # a character device: never read (it never ends)
        report = SkipReport(warn=False)
        result = _in_thread(lambda: fpre.load_image("/dev/zero", report=report))
        assert result == {"value": None} and "device" in _reason(report)


def test_only_face_image_formats_are_decoded(tmp_path):
    icon = tmp_path / "face.ico"
    Image.fromarray(_face()).resize((64, 64)).save(icon)
    report = SkipReport(warn=False)
    assert fpre.load_image(icon, report=report) is None
    assert "JPEG" in _reason(report) and "GIF" in _reason(report)
    gif = tmp_path / "face.gif"  # GIF is read (as explain always did) and lists as an image
    Image.fromarray(_face()).save(gif)
    assert np.array_equal(np.asarray(fpre.load_image(gif).convert("L")), _face())
    assert ".gif" in IMAGE_EXTENSIONS


# --------------------------------------------------------------------------- #
# Case 7: images too small for MTCNN
# --------------------------------------------------------------------------- #
def test_mtcnn_minimum_side_is_where_its_pyramid_is_empty():
    """min_face_size pixels is the smallest side MTCNN can search: one pixel less and
    facenet_pytorch fails inside (``torch.cat(): expected a non-empty list of Tensors``)."""
    from facenet_pytorch import MTCNN

    assert mtcnn_min_side(20) == 20
    assert mtcnn_min_side(40) == 40
    mtcnn = MTCNN(min_face_size=20)
    mtcnn.detect(np.zeros((1, 20, 20, 3), np.uint8))  # searched (no face)
    with pytest.raises((RuntimeError, ValueError), match="non-empty list"):
        mtcnn.detect(np.zeros((1, 19, 19, 3), np.uint8))


@pytest.mark.parametrize("side", [16, 19])
def test_too_small_image_is_a_per_image_failure(tmp_path, side):
    tiny = tmp_path / "tiny.png"
    Image.fromarray(_face()[:side, :side]).save(tiny)
    rgbs = [alignment.to_rgb_uint8(str(tiny)), alignment.to_rgb_uint8(str(orl_root() / "s1/1.pgm"))]
    found = alignment.detect_faces(rgbs, ["'tiny.png'", "'1.pgm'"])
    assert isinstance(found[0], ValueError)
    message = str(found[0])
    assert f"{side}x{side}" in message and "20x20" in message and "tiny.png" in message
    assert not isinstance(found[1], ValueError)


def test_explain_on_a_tiny_image_is_a_one_line_error(tmp_path, capsys):
    tiny = tmp_path / "tiny.png"
    Image.fromarray(_face()[:16, :16]).save(tiny)
    out = tmp_path / "out.npz"
    assert main(["explain", str(tiny), "--out", str(out), "--samples", "10", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faceexp explain: error: ") and "\n" not in err
    assert "tiny.png" in err and "16x16" in err and "20x20" in err
    assert "torch.cat" not in err
    assert not out.exists()


# --------------------------------------------------------------------------- #
# Sets: every file listed, the faces processed
# --------------------------------------------------------------------------- #
@pytest.fixture
def mixed_set(tmp_path):
    """Three ORL identities, three faces each (PNG; one of s1's a GIF), plus a dangling
    symlink, a FIFO and a 16x16 PNG among them."""
    root = tmp_path / "set"
    for identity in ("s1", "s2", "s3"):
        (root / identity).mkdir(parents=True)
        for k in (1, 2, 3):
            face = Image.open(orl_root() / identity / f"{k}.pgm")
            face.save(root / identity / (f"{k}.gif" if (identity, k) == ("s1", 3) else f"{k}.png"))
    (root / "s2" / "gone.png").symlink_to(tmp_path / "moved-away.png")
    special = {"gone": root / "s2" / "gone.png", "tiny": root / "s3" / "tiny.png",
               "gif": root / "s1" / "3.gif"}
    Image.fromarray(_face()[:16, :16]).save(special["tiny"])
    if hasattr(os, "mkfifo"):
        special["fifo"] = root / "s3" / "pipe.png"
        os.mkfifo(special["fifo"])
    return root, special


def test_set_scan_lists_unreadable_entries_with_their_reason(mixed_set):
    root, special = mixed_set
    report = SkipReport(warn=False)
    frame = scan_identity_folders(root, report=report)
    reasons = dict(report)
    assert reasons.keys() == {str(special["gone"]), str(special.get("fifo", special["gone"]))}
    assert "dangling symbolic link" in reasons[str(special["gone"])]
    assert "moved-away.png" in reasons[str(special["gone"])]
    if "fifo" in special:
        assert "FIFO" in reasons[str(special["fifo"])]
    # the GIF is a face like the others; the tiny PNG is an image (too small is found later)
    assert str(special["gif"]) in frame["path"].tolist()
    assert len(frame) == 10 and str(special["tiny"]) in frame["path"].tolist()
    # without a report: a warning each, never silence
    with pytest.warns(SkippedFileWarning) as record:
        assert scan_identity_folders(root).equals(frame)
    assert {str(w.message) for w in record} == {f"skipped {p}: {r}" for p, r in reasons.items()}


def test_verify_lists_the_tiny_image_and_goes_on(mixed_set, sface):
    from faceexp.verify.verification import verify_frame

    root, special = mixed_set
    frame = scan_identity_folders(root, report=SkipReport(warn=False))
    result = verify_frame(frame, sface, n_resamples=20)
    assert [f["image"] for f in result.failed] == ["s3/tiny.png"]
    assert "16x16" in result.failed[0]["error"] and "20x20" in result.failed[0]["error"]
    assert result.images == 9 and result.identities == 3  # the GIF among them
    assert result.genuine == 3 * 3 and result.impostor == 27


def test_pose_lists_the_tiny_image_and_goes_on(mixed_set):
    from faceexp.data.pose import estimate_pose

    root, special = mixed_set
    frame = scan_identity_folders(root, report=SkipReport(warn=False))
    report = SkipReport(warn=False)
    poses = estimate_pose(frame, progress=False, report=report)
    tiny = poses["path"] == str(special["tiny"])
    assert not poses.loc[tiny, "detected"].any() and poses.loc[~tiny, "detected"].all()
    assert report.paths == [str(special["tiny"])]
    assert "16x16" in _reason(report) and "20x20" in _reason(report)
