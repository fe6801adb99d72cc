"""Charsets, the glyph renderer, pair writing, packaging, the .obj reader and the dataset."""
import io
import json
from pathlib import Path
import shutil
import pickle
import random

import numpy as np
import pytest
import torch
from PIL import Image

from data.charsets import builtin_charset, gb2312_level1, load_charset
from data.corpus import FontEntry, list_fonts
from data.augment import augment_pair
from data.dataset import DatasetFromObj, signed_unit, split_pair
from data.obj import ObjFormatError, encode_image, read_obj, write_obj
from data.packaging import collect_pairs, package, split_pairs
from data.pairs import font2font, images2pairs, recurring_hashes, scan_glyph_images
from data.render import Font, RenderSettings, render_char
from fontkit import make_font
from utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
FONTS = ROOT / "fonts"
SANS, SERIF = FONTS / "NotoSansSC-Subset.otf", FONTS / "NotoSerifSC-Subset.otf"
SMALL = RenderSettings(char_size=64, canvas_size=64)


# ------------------------------------------------------------------ charsets

def test_builtin_charsets():
    sizes = {name: len(builtin_charset(name)) for name in ("CN", "CN_T", "JP", "KR")}
    assert sizes == {"CN": 6763, "CN_T": 5401, "JP": 6355, "KR": 2350}
    assert gb2312_level1()[0] == "啊" and gb2312_level1()[-1] == "座"
    assert "永" in builtin_charset("CN") and "龍" in builtin_charset("CN_T")
    assert "가" in builtin_charset("KR") and "亜" in builtin_charset("JP")


def test_charset_file_dedupes_and_ignores_whitespace(tmp_path):
    path = tmp_path / "chars.txt"
    path.write_text("永 和\n九永\t年\n\n和", encoding="utf-8")
    assert load_charset(str(path)) == ["永", "和", "九", "年"]
    with pytest.raises(UserError, match="--charset .*missing.txt"):
        load_charset(str(tmp_path / "missing.txt"))


# ------------------------------------------------------------------ renderer

def _ink_centre(img):
    ink = 255 - np.asarray(img, dtype=np.float64)
    ys, xs = np.indices(ink.shape)
    return (xs * ink).sum() / ink.sum(), (ys * ink).sum() / ink.sum()


def test_render_normalises_and_offsets_take_effect():
    font = Font(SANS, 64)
    glyph = render_char(font, "永", SMALL)
    assert glyph.size == (64, 64) and glyph.mode == "L"
    arr = np.asarray(glyph)
    assert arr.min() < 50 and arr[0, 0] == 255  # black ink on white
    shifted = render_char(font, "永", RenderSettings(64, 64, x_offset=6, y_offset=-4))
    (x0, y0), (x1, y1) = _ink_centre(glyph), _ink_centre(shifted)
    assert x1 - x0 == pytest.approx(6, abs=0.6) and y1 - y0 == pytest.approx(-4, abs=0.6)


def test_render_missing_and_inkless_glyphs(tmp_path):
    path = make_font(tmp_path / "t.ttf", {"A": [(100, 100, 900, 700)], "B": []})
    font = Font(path, 64)
    assert render_char(font, "A", SMALL) is not None
    assert render_char(font, "B", SMALL) is None   # mapped but no ink
    assert render_char(font, "Z", SMALL) is None   # not mapped
    assert render_char(Font(SANS, 64), "가", SMALL) is None


def test_font_errors_name_the_flag(tmp_path):
    with pytest.raises(UserError, match="--src_font .*nope.ttf: no such font file"):
        Font(tmp_path / "nope.ttf", flag="--src_font")
    bad = tmp_path / "bad.ttf"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(UserError, match="--dst_font .*bad.ttf: cannot read the font"):
        Font(bad, flag="--dst_font")


def test_ttc_face_index(tmp_path):
    from fontTools.ttLib import TTCollection, TTFont
    a = make_font(tmp_path / "a.ttf", {"A": [(100, 100, 900, 700)]})
    b = make_font(tmp_path / "b.ttf", {"A": [(400, 0, 600, 800)]})
    collection = TTCollection()
    collection.fonts = [TTFont(str(a)), TTFont(str(b))]
    collection.save(str(tmp_path / "ab.ttc"))
    wide = render_char(Font(tmp_path / "ab.ttc", 64, index=0), "A", SMALL)
    tall = render_char(Font(tmp_path / "ab.ttc", 64, index=1), "A", SMALL)
    assert np.abs(np.asarray(wide, float) - np.asarray(tall, float)).mean() > 20
    with pytest.raises(UserError, match="face index 2 out of range"):
        Font(tmp_path / "ab.ttc", 64, index=2)


# ------------------------------------------------------------------ font2font

def test_font2font_writes_pairs_and_reports_skips(tmp_path):
    src = make_font(tmp_path / "src.ttf", {c: [(100, 100, 900, 300 + 60 * i)] for i, c in enumerate("ABCDE")})
    dst = make_font(tmp_path / "dst.ttf", {"A": [(300, 0, 700, 800)], "B": [(200, 200, 800, 600)],
                                           "C": [], "E": [(100, 100, 200, 800)]})
    summary = font2font(Font(src, 64), Font(dst, 64), list("ABCDEF"), SMALL, tmp_path / "out", label=3)
    assert summary.written == 3  # A, B, E
    assert summary.skipped == {"not in target font": 1, "glyph has no ink": 1, "not in source font": 1}
    files = sorted(p.name for p in (tmp_path / "out").glob("*.jpg"))
    assert files == ["3_0000.jpg", "3_0001.jpg", "3_0002.jpg"]
    pair = Image.open(tmp_path / "out" / "3_0000.jpg")
    assert pair.size == (128, 64) and pair.mode == "L"
    target, source = split_pair(pair.convert("L"))
    want_target = render_char(Font(dst, 64), "A", SMALL)
    want_source = render_char(Font(src, 64), "A", SMALL)
    assert np.abs(np.asarray(target, float) - np.asarray(want_target, float)).mean() < 3
    assert np.abs(np.asarray(source, float) - np.asarray(want_source, float)).mean() < 3
    manifest = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [(m["file"], m["char"]) for m in manifest] == [("3_0000.jpg", "A"), ("3_0001.jpg", "B"),
                                                          ("3_0002.jpg", "E")]
    assert "not in target font" in summary.report()
    # writing the same label again would replace images: refused unless asked
    with pytest.raises(UserError, match="already holds 3 images.*--overwrite"):
        font2font(Font(src, 64), Font(dst, 64), list("AB"), SMALL, tmp_path / "out", label=3)
    again = font2font(Font(src, 64), Font(dst, 64), list("AB"), SMALL, tmp_path / "out", label=3,
                      overwrite=True)
    assert again.written == 2 and len(list((tmp_path / "out").glob("3_*.jpg"))) == 2


def test_filter_drops_recurring_placeholder_glyphs(tmp_path):
    shapes = {c: [(100, 100, 200 + 70 * i, 800)] for i, c in enumerate("ABCDEFGH")}
    shapes["X"] = [(100, 100, 900, 900), (300, 300, 700, 700)]  # a "tofu" box
    font_path = make_font(tmp_path / "f.ttf", shapes, aliases={c: "X" for c in "PQRSTU"})
    font = Font(font_path, 64)
    chars = list("ABCDEFGHPQRSTU")
    assert len(recurring_hashes(font, chars, SMALL)) == 1
    plain = make_font(tmp_path / "plain.ttf", {c: [(100, 100, 900, 200 + 40 * i)]
                                               for i, c in enumerate("ABCDEFGHPQRSTU")})
    summary = font2font(Font(plain, 64), font, chars, SMALL, tmp_path / "o", filter_recurring=True)
    assert summary.written == 8
    assert summary.skipped["recurring placeholder glyph (--filter)"] == 6
    unfiltered = font2font(Font(plain, 64), font, chars, SMALL, tmp_path / "o2")
    assert unfiltered.written == 14


def test_sample_count_and_seeded_shuffle(tmp_path):
    chars = load_charset(str(FONTS / "charset_demo.txt"))[:40]
    runs = []
    for name in ("a", "b"):
        font2font(Font(SANS, 64), Font(SERIF, 64), chars, SMALL, tmp_path / name, sample_count=5,
                  shuffle=True, seed=7)
        runs.append([json.loads(l)["char"] for l in (tmp_path / name / "manifest.jsonl").read_text().splitlines()])
    assert runs[0] == runs[1] and len(runs[0]) == 5 and runs[0] != chars[:5]


# ------------------------------------------------------------- glyph images

def test_font2imgs_and_imgs2imgs_with_name_pattern(tmp_path):
    targets, sources = tmp_path / "targets", tmp_path / "sources"
    targets.mkdir()
    sources.mkdir()
    rng = np.random.default_rng(0)
    for writer, label_name in (("alice", "alice"), ("bob", "bob")):
        for ch in "永和":
            img = np.full((80, 80), 240, np.uint8)
            x = int(rng.integers(10, 30))
            img[20:60, x:x + 30] = 20
            Image.fromarray(img).save(targets / f"{label_name}-U+{ord(ch):04X}.png")
    for ch in "永和":
        img = np.full((80, 80), 255, np.uint8)
        img[10:70, 30:50] = 0
        Image.fromarray(img).save(sources / f"{ch}.png")
    (targets / "notes.txt").write_text("not an image")
    (tmp_path / "labels.json").write_text(json.dumps({"alice": 0, "bob": 5}))
    pattern = r"^(?P<label>[a-z]+)-(?P<codepoint>U\+[0-9A-F]+)\.png$"
    found = scan_glyph_images(targets, pattern, label_map={"alice": 0, "bob": 5})
    assert set(found) == {(0, "永"), (0, "和"), (5, "永"), (5, "和")}
    with pytest.raises(UserError, match="not a number.*--label_map"):
        scan_glyph_images(targets, pattern)
    with pytest.raises(UserError, match="named group"):
        scan_glyph_images(targets, r"(?P<x>.)")

    summary = images2pairs(found, SMALL, tmp_path / "f2i", src_font=Font(SANS, 64))
    assert summary.written == 4
    assert sorted(p.name for p in (tmp_path / "f2i").glob("*.jpg")) == [
        "0_0000.jpg", "0_0001.jpg", "5_0000.jpg", "5_0001.jpg"]
    source_imgs = scan_glyph_images(sources, default_label=0, flag="--src_imgs")
    summary = images2pairs(found, SMALL, tmp_path / "i2i", sources=source_imgs)
    assert summary.written == 4
    pair = np.asarray(Image.open(tmp_path / "i2i" / "5_0000.jpg"))
    assert pair.shape == (64, 128) and pair[:, 64:].min() < 50  # source side has ink


# ------------------------------------------------------------------ package

def _pairs_dir(tmp_path, labels=(0, 1), chars="永和九年岁在癸丑暮春"):
    out = tmp_path / "pairs"
    for label, dst in zip(labels, (SERIF, FONTS / "WenKai-Subset.ttf")):
        font2font(Font(SANS, 32), Font(dst, 32), list(chars), RenderSettings(32, 32), out, label=label)
    return out


def test_package_split_by_char_holds_out_characters(tmp_path):
    out = _pairs_dir(tmp_path)
    summary = package([out], tmp_path / "data", split_ratio=0.3, seed=1, by="char")
    assert summary["train"] == {0: 7, 1: 7} and summary["val"] == {0: 3, 1: 3}
    pairs = collect_pairs([out])
    train, val = split_pairs(pairs, 0.3, seed=1, by="char")
    assert not {p.char for p in train} & {p.char for p in val}
    assert {p.char for p in val} == set(summary["val_chars"])
    assert split_pairs(pairs, 0.3, seed=1, by="char") == (train, val)  # seeded
    # zi2zi's plain pickle loop reads what we wrote
    records = []
    with open(tmp_path / "data" / "train.obj", "rb") as f:
        while True:
            try:
                records.append(pickle.load(f))
            except EOFError:
                break
    assert len(records) == 14 and all(isinstance(l, int) and isinstance(b, bytes) for l, b in records)


def test_package_by_pair_and_errors(tmp_path):
    out = _pairs_dir(tmp_path)
    summary = package([out], tmp_path / "data", split_ratio=0.25, by="pair")
    assert sum(summary["train"].values()) == 15 and sum(summary["val"].values()) == 5
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no paired images"):
        package([tmp_path / "empty"], tmp_path / "d2")
    assert not (tmp_path / "d2" / "train.obj").exists()
    (out / "manifest.jsonl").unlink()
    with pytest.raises(UserError, match="--split_by char needs the character"):
        package([out], tmp_path / "d3", by="char")
    with pytest.raises(UserError, match="--split_ratio"):
        package([out], tmp_path / "d4", split_ratio=1.5)


def test_package_takes_zi2zi_names_flags_and_reports_skips(tmp_path):
    out = _pairs_dir(tmp_path)
    first = sorted(out.glob("1_*.jpg"))[0]
    png = Image.open(first)
    png.save(out / "1_extra_name.png")            # zi2zi accepts any {label}_*.{jpg,png,tif}
    png.save(out / "1_scan.tif")
    png.save(out / "notes_1.png")                 # does not start with a label: skipped, and said so
    data = first.read_bytes()
    (out / "1_broken.jpg").write_bytes(data[: len(data) * 2 // 3])  # a truncated JPEG, header intact
    with pytest.raises(UserError, match="1_broken.jpg: the image does not decode"):
        package([out], tmp_path / "bad", split_ratio=0)
    assert not list((tmp_path / "bad").glob("*.tmp")) and not (tmp_path / "bad" / "train.obj").exists()
    (out / "1_broken.jpg").unlink()
    summary = package([out], tmp_path / "data", split_ratio=0)
    assert summary["train"] == {0: 10, 1: 12} and summary["val"] == {}
    assert summary["skipped"] == [f"{out / 'notes_1.png'}: the name does not start with {{label}}_"]
    assert (tmp_path / "data" / "val.obj").stat().st_size == 0    # zi2zi writes an empty val.obj
    # --dst_json + --type_file: keep the named fonts, renumbered by their line in the type file
    (tmp_path / "fonts.json").write_text('[{"font_name": "serif"}, {"font_name": "kai"}]')
    (tmp_path / "types.txt").write_text("kai\n")
    one = package([out], tmp_path / "relabelled", split_ratio=0, dst_json=tmp_path / "fonts.json",
                  type_file=tmp_path / "types.txt", save_obj_dir=tmp_path / "all.obj")
    assert one["train"] == {0: 12} and {r.label for r in read_obj(tmp_path / "all.obj")} == {0}
    assert not (tmp_path / "relabelled" / "train.obj").exists()
    with pytest.raises(UserError, match="--save_obj_dir .* needs --split_ratio 0"):
        package([out], tmp_path / "x", split_ratio=0.1, save_obj_dir=tmp_path / "x.obj")


# ------------------------------------------------------------------ .obj reader

def test_reads_zi2zi_pytorch_obj(reference_dir):
    records = read_obj(reference_dir / "zi2zi_pytorch_sample.obj")
    assert len(records) == 24 and {r.label for r in records} == {2}
    assert (records[0].width, records[0].height) == (512, 256)


def _obj_with(tmp_path, bad_record, index=1):
    good = (0, encode_image(Image.new("L", (64, 32), 255)))
    path = tmp_path / "bad.obj"
    with open(path, "wb") as f:
        for i in range(3):
            pickle.dump(bad_record if i == index else good, f)
    return path


@pytest.mark.parametrize("record, message", [
    ([0, b"x"], "record 1 is a list"),
    (("a", b"x"), "label 'a' is not an integer"),
    ((0, "text"), "not encoded image bytes"),
    ((0, b"garbage"), "do not decode"),
    ((0, encode_image(Image.new("L", (64, 64), 255))), "twice as wide"),
])
def test_bad_record_names_file_and_index(tmp_path, record, message):
    path = _obj_with(tmp_path, record)
    with pytest.raises(ObjFormatError, match=f"bad.obj: .*{message}"):
        read_obj(path)


def test_truncated_and_code_carrying_obj(tmp_path):
    path = _obj_with(tmp_path, (0, encode_image(Image.new("L", (64, 32), 255))))
    data = path.read_bytes()
    (tmp_path / "cut.obj").write_bytes(data[:-20])
    with pytest.raises(ObjFormatError, match="cut.obj: record 2 is truncated"):
        read_obj(tmp_path / "cut.obj")
    with open(tmp_path / "evil.obj", "wb") as f:
        pickle.dump((0, random.Random), f)
    with pytest.raises(ObjFormatError, match="evil.obj: record 0 .*refusing to load"):
        read_obj(tmp_path / "evil.obj")
    (tmp_path / "empty.obj").write_bytes(b"")
    with pytest.raises(ObjFormatError, match="no records"):
        read_obj(tmp_path / "empty.obj")


def test_write_obj_is_atomic(tmp_path):
    path = tmp_path / "t.obj"
    write_obj(path, [(1, encode_image(Image.new("L", (8, 4), 0)))])

    def failing():
        yield 2, encode_image(Image.new("L", (8, 4), 0))
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        write_obj(path, failing())
    assert [r.label for r in read_obj(path)] == [1]  # the old file is intact


# ------------------------------------------------------------------ dataset

def test_dataset_items(reference_dir):
    ds = DatasetFromObj(reference_dir / "zi2zi_pytorch_sample.obj", input_nc=1)
    label, target, source = ds[0]
    assert label == 2 and target.shape == source.shape == (1, 256, 256)
    assert target.dtype == torch.float32 and -1 <= target.min() < -0.5 and target.max() == 1.0
    img = Image.open(io.BytesIO(ds.records[0].image_bytes)).convert("L")
    left = signed_unit(torch.from_numpy(np.asarray(img)[:, :256].copy()))
    assert torch.equal(target[0], left)  # target is the left half, to the bit
    rgb = DatasetFromObj(reference_dir / "zi2zi_pytorch_sample.obj", input_nc=3)
    _, target3, _ = rgb[0]
    assert target3.shape == (3, 256, 256) and torch.equal(target3[1], target[0])
    shifted = DatasetFromObj(reference_dir / "zi2zi_pytorch_sample.obj", start_from=2)   # zi2zi's meaning
    assert len(shifted) == 24 and shifted[5][0] == 0 and set(shifted.labels) == {0}
    with pytest.raises(ObjFormatError, match="record 0 has label 2, below --start_from 3"):
        DatasetFromObj(reference_dir / "zi2zi_pytorch_sample.obj", start_from=3)


def test_augmentation_shared_by_both_halves():
    img = Image.new("L", (64, 64), 255)
    img.paste(0, (20, 10, 40, 50))
    random.seed(3)
    target, source = augment_pair(img, img.copy(), bold=True)
    assert target.size == (64, 64)
    assert np.array_equal(np.asarray(target), np.asarray(source))
    assert not np.array_equal(np.asarray(target), np.asarray(img))


class _ForceRng(random.Random):
    """Takes every optional branch (random() -> 0) and picks the last choice."""
    def random(self):
        return 0.0

    def choice(self, seq):
        return seq[-1]


def test_rotate_and_blur_flags_take_effect():
    img = Image.new("L", (64, 64), 255)
    img.paste(0, (10, 10, 30, 30))
    plain, _ = augment_pair(img, img.copy(), rng=_ForceRng(0))
    rotated, _ = augment_pair(img, img.copy(), rotate=True, rng=_ForceRng(0))
    blurred, _ = augment_pair(img, img.copy(), blur=True, rng=_ForceRng(0))
    assert _ink_centre(plain)[0] < 32 < _ink_centre(rotated)[0]  # turned 180 degrees
    grey = lambda im: ((np.asarray(im) > 30) & (np.asarray(im) < 225)).sum()
    assert grey(blurred) > 2 * grey(plain)


def test_no_style_name_file_means_no_names():
    from data.styles import read_style_names
    assert read_style_names(None, "--type_file") == {}


# ------------------------------------------------------------------ a corpus of fonts

def test_a_corpus_of_fonts_in_one_command(tmp_path, capsys):
    import font2img
    from data.styles import read_style_names
    fonts = tmp_path / "fonts"
    (fonts / "kai").mkdir(parents=True)
    shutil.copy(FONTS / "WenKai-Subset.ttf", fonts / "kai" / "WenKai-Subset.ttf")
    shutil.copy(FONTS / "SmileySans-Subset.ttf", fonts / "SmileySans-Subset.ttf")
    chars = "永和九年岁在癸丑"
    # a third font: four characters, and a placeholder glyph for four more
    make_font(fonts / "partial.ttf", {c: [(100, 100, 300 + 100 * i, 800)] for i, c in enumerate(chars[:4])}
              | {"丁": [(100, 100, 900, 900), (300, 300, 700, 700)]}, aliases={c: "丁" for c in chars[4:]})
    (tmp_path / "chars.txt").write_text(chars + "𠀀", encoding="utf-8")
    font2img.main(["--src_font", str(FONTS / "NotoSansSC-Subset.otf"), "--dst_fonts", str(fonts), "--charset",
                   str(tmp_path / "chars.txt"), "--label", "2", "--filter", "--char_size", "64", "--canvas_size", "64",
                   "--sample_dir", str(tmp_path / "pairs")])
    said = capsys.readouterr().out
    styles = json.loads((tmp_path / "pairs" / "styles.json").read_text(encoding="utf-8"))
    assert styles["source"].endswith("NotoSansSC-Subset.otf")
    by_label = {s["label"]: s for s in styles["styles"]}
    # sorted by path: SmileySans-Subset.ttf, kai/WenKai-Subset.ttf, partial.ttf
    assert [Path(by_label[k]["file"]).name for k in (2, 3, 4)] == ["SmileySans-Subset.ttf", "WenKai-Subset.ttf",
                                                                  "partial.ttf"]
    assert by_label[3]["family"] == "WenKai Subset" and by_label[3]["pairs"] == 8
    assert by_label[3]["coverage"] == pytest.approx(8 / 9, abs=1e-4)
    assert by_label[3]["skipped"] == {"not in source font": 1}   # 𠀀: the source lacks it first
    assert by_label[4]["pairs"] == 4 and by_label[4]["skipped"]["recurring placeholder glyph (--filter)"] == 4
    assert sorted(p.name for p in (tmp_path / "pairs").glob("4_*.jpg")) == [f"4_{i:04d}.jpg" for i in range(4)]
    assert "label 4 (" in said and "recurring placeholder glyph" in said and "--embedding_num 5" in said
    assert read_style_names(tmp_path / "pairs" / "styles.json", "--type_file")[3] == by_label[3]["name"]
    # the same labels again are refused before anything is drawn
    with pytest.raises(UserError, match="already holds images of labels \\[2, 3, 4\\]"):
        font2img.main(["--src_font", str(FONTS / "NotoSansSC-Subset.otf"), "--dst_fonts", str(fonts),
                       "--charset", str(tmp_path / "chars.txt"), "--label", "2", "--sample_dir", str(tmp_path / "pairs")])
    # a list file: one face of each, relative paths from the list's folder
    (fonts / "list.txt").write_text("kai/WenKai-Subset.ttf\n// not this one\nSmileySans-Subset.ttf#0\n")
    assert list_fonts(fonts / "list.txt") == [FontEntry(fonts / "kai" / "WenKai-Subset.ttf"),
                                              FontEntry(fonts / "SmileySans-Subset.ttf")]
    (fonts / "bad.txt").write_text("x.ttf#one\n")
    with pytest.raises(UserError, match="line 1: expected PATH or PATH#FACE"):
        list_fonts(fonts / "bad.txt")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.ttf").write_text("not a font")
    with pytest.raises(UserError, match="a.ttf: cannot read the font"):
        font2img.main(["--src_font", str(FONTS / "NotoSansSC-Subset.otf"), "--dst_fonts", str(tmp_path / "broken"),
                       "--sample_dir", str(tmp_path / "pairs2")])
    assert not (tmp_path / "pairs2").exists() or not any((tmp_path / "pairs2").iterdir())
