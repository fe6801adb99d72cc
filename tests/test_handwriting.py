"""The handwriting path: the template PDF, the scan reader on a bench that imitates real paper,
every bad input as one line, and the README's commands from template to font."""
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import make_template
import read_scans
from data.charsets import hanzi_by_frequency, load_charset
from data.cleanup import clean_glyph
from data.render import Font
from handwriting import synthetic
from handwriting.register import find_markers, read_qr, register
from handwriting.sheet import Layout, parse_qr
from utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
FONTS = ROOT / "fonts"
HAND = Font(FONTS / "WenKai-Subset.ttf")   # the "writer"
SIZE = 128                                # glyph images of the bench


@pytest.fixture(scope="module")
def sheets(tmp_path_factory):
    """The default template (COVER300, A4) and its pages 1 and 2 written in WenKai."""
    root = tmp_path_factory.mktemp("sheets")
    make_template.main(["--out", str(root / "template.pdf"), "--guide_font", str(FONTS / "NotoSerifSC-Subset.otf")])
    layout = Layout.load(root / "template.json")
    written = {n: synthetic.write_page(synthetic.render_page(root / "template.pdf", n), layout, layout.page(n),
                                       HAND, SIZE, seed=n) for n in (1, 2)}
    return root, layout, written


def save(image: np.ndarray, path: Path, quality: int = 95) -> Path:
    Image.fromarray(image).save(path, quality=quality)
    return path


def read_back(page_image: np.ndarray, layout: Layout, out: Path, name: str = "scan.jpg", *flags) -> dict:
    scans = out.parent / f"{out.name}-scans"
    scans.mkdir(exist_ok=True)
    save(page_image, scans / name)
    read_scans.main(["--layout", str(layout_path(layout, out)), "--out_dir", str(out), "--size", str(SIZE),
                     *flags, str(scans / name)])
    return {p.stem: np.asarray(Image.open(p)) for p in out.glob("*.png")}


def layout_path(layout: Layout, out: Path) -> Path:
    path = out.parent / "layout.json"
    if not path.exists():
        layout.save(path)
    return path


# ------------------------------------------------------------------ charsets

def test_frequency_sets_are_the_head_of_one_ranked_gb2312_list():
    ranked = hanzi_by_frequency()
    assert len(ranked) == len(set(ranked)) == 6763 and set(ranked) == set(load_charset("CN"))
    assert load_charset("FREQ300") == list(ranked[:300]) and load_charset("FREQ1000")[:300] == list(ranked[:300])
    assert ranked[:3] == ("的", "是", "一")           # the commonest characters of any Chinese corpus lead
    with pytest.raises(UserError, match="FREQ0: n must be 1 to 6763"):
        load_charset("FREQ0")
    with pytest.raises(UserError, match="FREQ9000"):
        load_charset("FREQ9000")


def test_the_few_shot_sets_cover_more_components_than_the_most_frequent_characters():
    from data.charsets import components, components_covered, hanzi_by_coverage
    ranked = hanzi_by_coverage()
    assert len(ranked) == len(set(ranked)) == 2000 and set(ranked) == set(load_charset("FREQ2000"))
    assert load_charset("COVER300") == list(ranked[:300]) == load_charset("COVER300")   # nested and fixed
    assert components()["想"] >= {"相", "心", "木", "目", "@d"}                    # 想 = 相 over 心, 相 = 木 beside 目
    for n in (100, 300, 500, 1000):
        assert len(components_covered(load_charset(f"COVER{n}"))) >= len(components_covered(load_charset(f"FREQ{n}")))
    with pytest.raises(UserError, match="COVER2001: n must be 1 to 2000"):
        load_charset("COVER2001")


def test_the_bundled_fonts_hold_every_built_in_few_shot_set():
    for name in ("NotoSansSC-Subset.otf", "NotoSerifSC-Subset.otf", "WenKai-Subset.ttf", "SmileySans-Subset.ttf"):
        font = Font(FONTS / name)
        assert all(font.has_char(c) for c in load_charset("FREQ500") + load_charset("COVER1000")), name


# ------------------------------------------------------------------ template

def test_the_template_renders_and_its_markers_and_codes_are_found(sheets):
    root, layout, _ = sheets
    data = json.loads((root / "template.json").read_text(encoding="utf-8"))
    assert data["charset"] == "".join(load_charset("COVER300")) and data["paper"] == "A4"
    cells = [c for page in data["pages"] for c in page["cells"]]
    assert [c["char"] for c in cells] == load_charset("COVER300")
    assert len(data["pages"]) == 4
    for page in layout.pages:
        image = synthetic.render_page(root / "template.pdf", page.number, dpi=200)
        markers = find_markers(image)
        assert sorted(markers) == [0, 1, 2, 3]
        registered = register("template", image, layout)
        assert registered.page.number == page.number and registered.turned == 0
        assert parse_qr(read_qr(image, registered.homography, layout))["page"] == str(page.number)
    # every writing square lies inside its frame with the gap, and no two frames overlap
    for page in data["pages"]:
        for cell in page["cells"]:
            (x, y, side), (fx, fy, fside) = cell["writing"], cell["frame"]
            assert fx < x and fy < y and x + side < fx + fside and y + side < fy + fside
        frames = [c["frame"] for c in page["cells"]]
        for a, b in zip(frames, frames[1:]):
            assert b[0] >= a[0] + a[2] or b[1] >= a[1] + a[2]
    # the label font is embedded as a subset: the PDF is far smaller than the font it draws from
    assert (root / "template.pdf").stat().st_size < 1.2 * (FONTS / "NotoSansSC-Subset.otf").stat().st_size


def test_template_letter_paper_and_the_characters_a_font_lacks(tmp_path):
    from fontTools import subset
    charset = tmp_path / "chars.txt"
    lacking = "𠀀"                                  # no bundled font has it
    charset.write_text("永和九年" + "的是", encoding="utf-8")
    # a font of the writer's own hand so far: two characters
    partial = tmp_path / "partial.ttf"
    subset.main([str(FONTS / "WenKai-Subset.ttf"), "--text=的是", f"--output-file={partial}"])
    make_template.main(["--charset", str(charset), "--missing_from", str(partial),
                        "--paper", "Letter", "--out", str(tmp_path / "rest.pdf")])
    data = json.loads((tmp_path / "rest.json").read_text(encoding="utf-8"))
    assert data["charset"] == "永和九年"
    assert data["page_size"] == [215.9, 279.4]
    assert len(synthetic.render_page(tmp_path / "rest.pdf", 1, dpi=72)) == round(279.4 / 25.4 * 72)
    with pytest.raises(UserError, match="--missing_from .* already has every character"):
        charset.write_text("的是", encoding="utf-8")
        make_template.main(["--charset", str(charset), "--missing_from", str(FONTS / "NotoSansSC-Subset.otf"),
                            "--out", str(tmp_path / "none.pdf")])
    charset.write_text(lacking, encoding="utf-8")
    with pytest.raises(UserError, match=r"--label_font .* lacks 1 of the 1 characters"):
        make_template.main(["--charset", str(charset), "--out", str(tmp_path / "x.pdf")])
    assert not (tmp_path / "x.pdf").exists() and not (tmp_path / "none.pdf").exists()


# ------------------------------------------------------------------ the bench

def check_read_back(read: dict, written: synthetic.WrittenPage):
    scores = synthetic.score(read, written.truth)
    ious = [s.iou for s in scores]
    assert set(read) == set(written.truth), "every written character, and no empty cell, is read"
    assert np.mean(ious) >= 0.90 and min(ious) >= 0.75, (np.mean(ious), min(ious))
    assert min(s.background_min for s in scores) >= 250     # no paper, label, frame or guide left
    assert max(s.ink_median for s in scores) <= 60           # ink is dark
    return scores


def test_a_clean_scan_reads_back_the_written_ink(sheets, tmp_path):
    _, layout, written = sheets
    read = read_back(written[1].image, layout, tmp_path / "glyphs")
    check_read_back(read, written[1])
    # the writing square is the em box: the glyph sits where it was written, not centred
    record = json.loads((tmp_path / "glyphs" / "reading" / "pages.json").read_text(encoding="utf-8"))
    (page,) = record["pages"].values()
    assert page["page"] == 1 and page["turned"] == 0 and abs(page["dpi"] - 300) <= 3
    assert (tmp_path / "glyphs" / "reading" / page["contact_sheet"]).is_file()


CAPTURES = {
    "scanner": lambda page: synthetic.scanner(page, seed=3),
    "phone": lambda page: synthetic.phone_photo(page, seed=3),
    "phone, curled paper": lambda page: synthetic.phone_photo(synthetic.curled(page, 1.5), seed=3),
}


@pytest.mark.slow
@pytest.mark.parametrize("distort", sorted(CAPTURES))
def test_scanner_and_phone_benches(sheets, tmp_path, distort):
    """Grey paper, uneven light, noise, skew, JPEG 60; the phone: 20 degree tilt, 5 degree turn, a shadow;
    paper that is not flat (the middle of the page 1.5 mm off where the corners put it)."""
    _, layout, written = sheets
    image = CAPTURES[distort](written[2].image)
    read = read_back(image, layout, tmp_path / "glyphs")
    scores = check_read_back(read, written[2])
    print(f"{distort}: IoU mean {np.mean([s.iou for s in scores]):.3f}, worst {min(s.iou for s in scores):.3f}")


def test_centring_moves_the_ink_to_the_middle_keeping_its_size(sheets, tmp_path):
    _, layout, written = sheets
    kept = read_back(written[1].image, layout, tmp_path / "kept")
    centred = read_back(written[1].image, layout, tmp_path / "centred", "scan.jpg", "--center")
    offsets = []
    for ch in kept:
        ink_kept, ink_centred = kept[ch] < 128, centred[ch] < 128
        assert ink_kept.sum() == ink_centred.sum()
        ys, xs = np.nonzero(ink_centred)
        assert abs((xs.min() + xs.max()) / 2 - (SIZE - 1) / 2) <= 1 and abs((ys.min() + ys.max()) / 2 - (SIZE - 1) / 2) <= 1
        ys, xs = np.nonzero(ink_kept)
        offsets.append(abs((xs.min() + xs.max()) / 2 - (SIZE - 1) / 2))
    assert max(offsets) > 2   # the jittered hand did not centre every glyph by itself


def test_turned_pages_are_read_the_right_way_round(sheets, tmp_path, capsys):
    _, layout, written = sheets
    for turn in (1, 2):   # sideways, upside down
        read = read_back(np.rot90(written[1].image, turn).copy(), layout, tmp_path / f"turned{turn}")
        check_read_back(read, written[1])
        assert f"turned {turn * 90 if turn == 2 else 270} degrees" in capsys.readouterr().out


def test_a_page_read_again_replaces_its_glyphs_and_says_so(sheets, tmp_path, capsys):
    _, layout, written = sheets
    out = tmp_path / "glyphs"
    read_back(written[1].image, layout, out, "first.jpg")
    first = {p.name: p.read_bytes() for p in out.glob("*.png")}
    capsys.readouterr()
    read_back(synthetic.scanner(written[1].image, seed=9), layout, out, "second.jpg")
    said = capsys.readouterr().out
    assert re.search(r"second\.jpg: page 1/4, \d+ glyphs; replaces the glyphs read from first\.jpg", said)
    second = {p.name: p.read_bytes() for p in out.glob("*.png")}
    assert second.keys() == first.keys() and any(second[k] != first[k] for k in first)
    record = json.loads((out / "reading" / "pages.json").read_text(encoding="utf-8"))
    assert [p["source"] for p in record["pages"].values()] == ["second.jpg"]


def test_doubtful_cells_are_named(sheets, tmp_path, capsys):
    _, layout, written = sheets
    image = written[1].image.copy()
    cells = layout.page(1).cells
    px = image.shape[1] / layout.geometry.page_size[0]
    # a stroke run past the square's right edge; a stray dot far from the glyph; a glyph in pale pencil
    x, y, side = cells[0].writing
    image[int((y + side / 2) * px):int((y + side / 2) * px) + 8, int((x + side * 0.6) * px):int((x + side + 0.5) * px)] = 30
    # in a square the bench left blank: a block in the middle, and a stray dot in a corner
    dotted = next(i for i, c in enumerate(cells) if c.char in written[1].empty)
    x, y, side = cells[dotted].writing
    image[int((y + 5) * px):int((y + 10) * px), int((x + 5) * px):int((x + 10) * px)] = 30
    image[int((y + 1) * px):int((y + 1) * px) + 7, int((x + 1) * px):int((x + 1) * px) + 7] = 30
    x, y, side = cells[1].writing
    patch = image[int(y * px):int((y + side) * px), int(x * px):int((x + side) * px)]
    patch[:] = np.maximum(patch, 150)
    capsys.readouterr()
    read_back(written[1].image, layout, tmp_path / "untouched")
    first = capsys.readouterr().out.splitlines()
    assert {f"  {ch} empty" for ch in written[1].empty} <= set(first)   # the cells the bench left blank
    untouched = {line for line in first if "doubtful:" in line}
    read_back(image, layout, tmp_path / "glyphs")
    said = {line for line in capsys.readouterr().out.splitlines() if "doubtful:" in line}
    assert said - untouched == {f"  {cells[0].char} doubtful: ink touches the border",
                                f"  {cells[dotted].char} doubtful: fragments far apart",
                                f"  {cells[1].char} doubtful: too faint"}


# ------------------------------------------------------------------ bad input, one line each

BAD_INPUTS = {
    "no markers": r"no corner markers found",
    "corner cut off": r"the page's bottom-left corner marker is not in the picture",
    "too small": r"too small to read.*at least 150 dpi",
    "too blurred": r"too blurred to read",
    "another template": r"from another template",
    "not an image": r"not an image or PDF",
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(sheets, tmp_path, case):
    root, layout, written = sheets
    page = written[1].image
    out = tmp_path / "glyphs"
    out.mkdir()
    (out / "永.png").write_bytes(b"an earlier glyph")
    scan = tmp_path / "scan.jpg"
    if case == "no markers":
        save(np.full_like(page, 230), scan)
    elif case == "corner cut off":   # the photo's frame missed the bottom-left corner
        cut = page.copy()
        cut[-500:, :500] = 90
        save(cut, scan)
    elif case == "too small":
        save(cv2.resize(page, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA), scan)
    elif case == "too blurred":
        save(cv2.GaussianBlur(page, (0, 0), 9), scan)
    elif case == "another template":
        other = tmp_path / "other.pdf"
        make_template.main(["--charset", "FREQ200", "--out", str(other)])
        save(synthetic.render_page(other, 1), scan)
    elif case == "not an image":
        scan.write_text("these are not the pixels you are looking for")
    with pytest.raises(UserError) as err:
        read_scans.main(["--layout", str(root / "template.json"), "--out_dir", str(out), str(scan)])
    message = str(err.value)
    assert re.search(BAD_INPUTS[case], message) and "scan.jpg" in message and "\n" not in message
    assert sorted(p.name for p in out.iterdir()) == ["永.png"] and (out / "永.png").read_bytes() == b"an earlier glyph"


def test_two_scans_of_one_page_are_refused_before_anything_is_written(sheets, tmp_path, run_script):
    root, _, written = sheets
    a = save(synthetic.scanner(written[2].image, seed=1), tmp_path / "a.jpg")
    b = save(synthetic.phone_photo(written[2].image, seed=2), tmp_path / "b.jpg")
    result = run_script("read_scans.py", "--layout", root / "template.json", "--out_dir", tmp_path / "glyphs",
                        a, b, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: a.jpg and b.jpg are both page 2/4; give one scan of each page"]
    assert result.stderr.rstrip().endswith(errors[0])
    assert not (tmp_path / "glyphs").exists() or not any((tmp_path / "glyphs").glob("*.png"))


def test_a_multi_page_pdf_of_scans_is_read_page_by_page(sheets, tmp_path, capsys):
    root, layout, written = sheets
    pages = [Image.fromarray(written[n].image) for n in (1, 2)]
    pages[0].save(tmp_path / "scans.pdf", save_all=True, append_images=pages[1:], resolution=300)
    read_scans.main(["--layout", str(root / "template.json"), "--out_dir", str(tmp_path / "glyphs"),
                     "--size", str(SIZE), str(tmp_path / "scans.pdf")])
    said = capsys.readouterr().out
    assert "scans.pdf page 1: page 1/4" in said and "scans.pdf page 2: page 2/4" in said
    assert len(list((tmp_path / "glyphs").glob("*.png"))) == len(written[1].truth) + len(written[2].truth)


# ------------------------------------------------------------------ clean-up of any glyph image

def test_cleanup_whitens_any_paper_and_keeps_thick_strokes_and_edges():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:200, 0:200]
    paper = 200 + 50 * xx / 199                         # grey, lit from one side
    ink = np.zeros((200, 200), np.float32)
    ink[40:160, 40:160] = 1.0                          # a stroke wider than any pen's
    ink = cv2.GaussianBlur(ink, (0, 0), 1.2)           # with an anti-aliased edge
    gray = np.clip(paper * (1 - ink) + 30 * ink + rng.normal(0, 3, ink.shape), 0, 255).astype(np.uint8)
    cleaned = clean_glyph(gray)
    assert not cleaned.empty
    assert cleaned.image[60:140, 60:140].max() <= 5            # the inside stays black, not hollowed
    assert cleaned.image[:30].min() == 255 and cleaned.image[:, -20:].min() == 255
    edge = cleaned.image[100, 30:50]
    assert ((edge > 20) & (edge < 235)).any()                  # grey levels survive at the edge
    blank = clean_glyph(np.clip(paper + rng.normal(0, 4, paper.shape), 0, 255).astype(np.uint8))
    assert blank.empty and blank.image.min() == 255


def test_font2imgs_gives_glyphs_on_grey_paper_a_white_background(tmp_path):
    import font2img
    glyphs = tmp_path / "glyphs"
    glyphs.mkdir()
    rng = np.random.default_rng(1)
    for ch in "永和九年岁在":
        canvas = Image.new("L", (160, 160), 0)
        from PIL import ImageDraw

        from data.render import draw_in_em_box
        draw_in_em_box(ImageDraw.Draw(canvas), HAND, ch, (10, 10, 140), fill=255)
        ink = np.asarray(canvas) / 255.0
        paper = 232 + 15 * np.linspace(-1, 1, 160)[None, :]
        gray = np.clip(paper * (1 - ink) + 40 * ink + rng.normal(0, 3, ink.shape), 0, 255).astype(np.uint8)
        save(gray, glyphs / f"{ch}.png")
    font2img.main(["--mode", "font2imgs", "--src_font", str(FONTS / "NotoSansSC-Subset.otf"),
                   "--dst_imgs", str(glyphs), "--canvas_size", "64", "--char_size", "64",
                   "--sample_dir", str(tmp_path / "pairs")])
    pairs = sorted((tmp_path / "pairs").glob("*.jpg"))
    assert len(pairs) == 6
    for path in pairs:
        target = np.asarray(Image.open(path))[:, :64].astype(int)
        assert np.median(target) >= 250 and np.percentile(target, 75) >= 250   # paper: white, not 232
        assert target.min() <= 40                                              # ink: dark


# ------------------------------------------------------------------ the README's path

def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Your own handwriting", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [line.split() for line in block.splitlines() if line.startswith("python ")]


# sizes only: a small model on small images for a few steps, and a short font
SHRINK = {"font2img.py": ["--canvas_size", "32", "--char_size", "32"],
          "train.py": ["--image_size", "32", "--ngf", "8", "--ndf", "8", "--max_steps", "6", "--batch_size", "8",
                       "--sample_steps", "1000", "--checkpoint_steps", "3"],
          "export_font.py": ["--limit", "24"]}


@pytest.mark.slow
def test_the_readme_handwriting_path_runs_as_written(sheets, tmp_path, run_script, tiny_config):
    from model.checkpoint import Checkpoints
    from training.checkpoint import save_checkpoint
    from training.step import TrainingStep
    root, _, written = sheets
    commands = readme_commands()
    assert [c[1] for c in commands] == ["make_template.py", "read_scans.py", "font2img.py", "package.py",
                                        "train.py", "export_font.py"]
    hand, base = tmp_path / "hand", tmp_path / "base"
    # step 0, scripts/train_base.sh, stands in as a small untrained base of the README's 13 styles
    model = TrainingStep(tiny_config(embedding_num=13))
    model.step = 5
    save_checkpoint(model, base / "checkpoint")
    Checkpoints(base / "checkpoint").write_best(5, "ssim", 0.5, True)

    def here(args):
        return [str(hand) if a == "hand" else a.replace("hand/", f"{hand}/").replace("base:", f"{base}:")
                for a in args]

    run_script(*here(commands[0])[1:])
    # "print it, write, scan": two written pages, as a scanner and a phone would give them
    layout = Layout.load(hand / "template.json")
    assert layout.digest == json.loads((root / "template.json").read_text(encoding="utf-8"))["charset_digest"]
    (hand / "scans").mkdir()
    save(synthetic.scanner(written[1].image, seed=5), hand / "scans" / "page1.jpg", quality=90)
    save(synthetic.phone_photo(written[2].image, seed=6), hand / "scans" / "IMG_0002.jpg", quality=90)
    for command in commands[1:]:
        result = run_script(*here(command)[1:], *SHRINK.get(command[1], []))
        if command[1] == "read_scans.py":
            assert "read 2 pages" in result.stdout and "pages of this template not read yet: 3, 4" in result.stdout
        if command[1] == "train.py":   # the base's weights, the writer's label grown, the recipe's values
            assert "note: --recipe few_shot" in result.stdout and "note: label 13 starts from label" in result.stdout
    font = hand / "my_hand.ttf"
    from fontTools.ttLib import TTFont
    cmap = TTFont(font).getBestCmap()
    assert sum(ord(c) in cmap for c in load_charset("FREQ500")) == 24
    shutil.rmtree(hand / "scans")


def test_a_glyph_another_template_wrote_since_is_not_removed_by_rereading(sheets, tmp_path, capsys):
    root, layout, written = sheets
    out = tmp_path / "glyphs"
    read_scans.main(["--layout", str(root / "template.json"), "--out_dir", str(out), "--size", str(SIZE),
                     str(save(written[1].image, tmp_path / "a1.jpg"))])
    # a second template that shares two characters with the first page of the first
    first, second = (c.char for c in layout.page(1).cells[:2])
    (tmp_path / "more.txt").write_text(first + second + "永", encoding="utf-8")
    make_template.main(["--charset", str(tmp_path / "more.txt"), "--out", str(tmp_path / "more.pdf")])
    more = Layout.load(tmp_path / "more.json")
    page = synthetic.write_page(synthetic.render_page(tmp_path / "more.pdf", 1), more, more.page(1), HAND, SIZE,
                                seed=4, blank_every=0)
    capsys.readouterr()
    read_scans.main(["--layout", str(tmp_path / "more.json"), "--out_dir", str(out), "--size", str(SIZE),
                     str(save(page.image, tmp_path / "b1.jpg"))])
    assert f"; 2 replace glyphs another page wrote (e.g. {first}{second})" in capsys.readouterr().out
    theirs = (out / f"{first}.png").read_bytes()
    # the first page scanned again with that square blank: its old glyph is not its to remove any more
    blank = written[1].image.copy()
    px = blank.shape[1] / layout.geometry.page_size[0]
    x, y, side = layout.page(1).cells[0].writing
    blank[int(y * px) - 2:int((y + side) * px) + 2, int(x * px) - 2:int((x + side) * px) + 2] = 255
    read_scans.main(["--layout", str(root / "template.json"), "--out_dir", str(out), "--size", str(SIZE),
                     str(save(blank, tmp_path / "a1-again.png"))])
    assert (out / f"{first}.png").read_bytes() == theirs
    record = json.loads((out / "reading" / "pages.json").read_text(encoding="utf-8"))
    assert record["glyphs"][first].startswith(more.digest) and record["glyphs"][second].startswith(layout.digest)
