"""From a checkpoint to an installable font: tracing, metrics, name/cmap tables, verification, specimen."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fontTools.ttLib import TTFont
from PIL import Image, ImageFont

from data.pairs import font2font
from data.render import Font, RenderSettings
from export.build import SPACES, FontNames, SourceFont, looks_monospaced
from export.pipeline import ExportOptions, export_font
from export.specimen import wrap, write_specimen
from export.trace import GlyphBox, trace_raster
from model import ModelConfig, build_generator
from utils.errors import UserError


def _drawn_by_both(fonts) -> str:
    src, dst = Font(fonts / "NotoSansSC-Subset.otf", 64), Font(fonts / "WenKai-Subset.ttf", 64)
    text = (fonts / "charset_demo.txt").read_text(encoding="utf-8")
    return "".join(dict.fromkeys(c for c in text if src.has_char(c) and dst.has_char(c) and not c.isspace()))


CHARS = _drawn_by_both(Path(__file__).resolve().parents[1] / "fonts")[:60]


@pytest.fixture(scope="module")
def fonts(repo_root):
    return repo_root / "fonts"


@pytest.fixture(scope="module")
def tiny_generator():
    torch.manual_seed(0)
    config = ModelConfig(image_size=64, ngf=8, ndf=8, embedding_num=2, embedding_dim=16)
    return build_generator(config).eval(), config


@pytest.fixture(scope="module")
def real_pairs(tmp_path_factory, fonts):
    """font2img's pairs of 50 characters, WenKai as label 1 (the designer's drawings)."""
    folder = tmp_path_factory.mktemp("pairs")
    font2font(Font(fonts / "NotoSansSC-Subset.otf", 64), Font(fonts / "WenKai-Subset.ttf", 64), list(CHARS[:50]),
              RenderSettings(64, 64), folder, label=1)
    return folder


def test_a_square_traces_to_its_outline_where_the_source_glyph_sits():
    raster = np.full((64, 64), 255, np.uint8)
    raster[16:48, 16:48] = 0
    box = GlyphBox(center_x=500, center_y=380, side=640)   # the image square covers x 180..820, y 60..700
    path = trace_raster(raster, box, clockwise=True)
    x0, y0, x1, y1 = path.bounds
    assert (x0, x1) == pytest.approx((340, 660), abs=6) and (y0, y1) == pytest.approx((220, 540), abs=6)
    assert path.area == pytest.approx(320 * 320, rel=0.05)
    assert trace_raster(np.full((64, 64), 255, np.uint8), box, clockwise=True).area == 0   # no ink, no contour


@pytest.mark.parametrize("suffix", [".ttf", ".otf"])
def test_exported_font_is_complete_installable_and_matches_its_rasters(suffix, tiny_generator, real_pairs, fonts,
                                                                      tmp_path):
    netG, config = tiny_generator
    out = tmp_path / f"style{suffix}"
    charset = tmp_path / "chars.txt"
    charset.write_text(CHARS[:50], encoding="utf-8")
    names = FontNames("Test Style", "Regular", "Version 1.000; checkpoint step 7")
    result = export_font(netG, 7, ExportOptions(1, fonts / "NotoSansSC-Subset.otf", out, names, str(charset),
                                                prefer_real=real_pairs, workers=2), "cpu", 64)
    assert len(result.real) == 50 and not result.generated   # the designer's drawings win where they exist
    font = TTFont(str(out))
    assert {chr(c) for c in font.getBestCmap()} == set(CHARS[:50]) | set(SPACES)   # exactly the exported characters
    assert font.getGlyphOrder()[0] == ".notdef" and ("glyf" in font) == (suffix == ".ttf")
    assert font["name"].getDebugName(1) == "Test Style" and font["name"].getDebugName(5).endswith("step 7")
    source = TTFont(str(fonts / "NotoSansSC-Subset.otf"))
    assert font["head"].unitsPerEm == source["head"].unitsPerEm
    assert font["OS/2"].sTypoAscender == source["OS/2"].sTypoAscender
    glyph = source.getBestCmap()[ord("永")]
    assert font["hmtx"]["uni6C38"][0] == source["hmtx"][glyph][0]   # the source's advance width
    v = result.verification
    assert v.cmap_matches and len(v.iou) == 50 and v.mean_iou >= 0.9, v.worst()
    pil = ImageFont.truetype(str(out), 64)   # Pillow renders it
    assert pil.getbbox("永")[2] > 10
    if shutil.which("fc-scan"):   # fontconfig, where installed, accepts it as a font
        family = subprocess.run(["fc-scan", "--format", "%{family}", str(out)], capture_output=True, text=True)
        assert family.stdout == "Test Style"


@pytest.mark.slow
def test_generated_glyphs_fill_in_what_has_no_real_drawing(tiny_generator, real_pairs, fonts, tmp_path):
    netG, _ = tiny_generator
    charset = tmp_path / "chars.txt"
    charset.write_text(CHARS[40:60] + "\U0002A6A5", encoding="utf-8")   # 10 drawn, 10 not, 1 the font lacks
    result = export_font(netG, 7, ExportOptions(1, fonts / "NotoSansSC-Subset.otf", tmp_path / "f.ttf", FontNames("T"),
                                                str(charset), prefer_real=real_pairs, workers=1), "cpu", 64)
    assert sorted(result.real) == sorted(CHARS[40:50]) and sorted(result.generated) == sorted(CHARS[50:60])
    assert result.lacking == ["\U0002A6A5"] and result.timer.seconds["generate"] > 0 and result.timer.seconds["trace"] > 0
    with pytest.raises(UserError, match=r"name the font with one of \.ttf \(TrueType\), .* \.ufo"):
        export_font(netG, 7, ExportOptions(1, fonts / "NotoSansSC-Subset.otf", tmp_path / "f.woff", FontNames("T"),
                                           str(charset)), "cpu", 64)


@pytest.mark.slow
def test_real_glyphs_found_in_an_obj_by_their_source(tiny_generator, real_pairs, fonts, tmp_path):
    from data.packaging import package
    package([real_pairs], tmp_path / "data", split_ratio=0.0)
    split = json.loads((tmp_path / "data" / "split.json").read_text(encoding="utf-8"))
    assert set(split["train_chars"]) == set(CHARS[:50])   # what --charset data reads
    netG, _ = tiny_generator
    charset = tmp_path / "chars.txt"
    charset.write_text(CHARS[:50], encoding="utf-8")
    result = export_font(netG, 7, ExportOptions(1, fonts / "NotoSansSC-Subset.otf", tmp_path / "f.ttf", FontNames("T"),
                                                "data", data_dir=tmp_path / "data",
                                                prefer_real=tmp_path / "data" / "train.obj", workers=1), "cpu", 64)
    assert sorted(result.real) == sorted(CHARS[:50])


def test_source_metrics_place_the_glyph_box_like_font2img(fonts):
    source = SourceFont(fonts / "NotoSansSC-Subset.otf")
    x0, y0, x1, y1 = source.bounds("一")   # a flat stroke: the square is as wide as the ink box plus margins
    box = source.glyph_box("一", 64)
    margin = 5 * source.metrics.units_per_em / 64
    assert box.side == pytest.approx(x1 - x0 + 2 * margin)
    assert box.to_units(32, 32, 64) == pytest.approx(((x0 + x1) / 2, (y0 + y1) / 2))


def test_specimen_wraps_and_leaves_out_what_the_font_lacks(fonts, tmp_path):
    font = ImageFont.truetype(str(fonts / "NotoSansSC-Subset.otf"), 40)
    lines = wrap("永和九年 abc defgh 岁在癸丑", font, 200)
    assert all(font.getlength(line) <= 200 for line in lines) and "".join(lines).replace(" ", "") == \
        "永和九年abcdefgh岁在癸丑"
    assert any("defgh" in line for line in lines)   # a Latin word is not split
    png, missing = write_specimen(fonts / "WenKai-Subset.ttf", "永和\U0002A6A5九年", tmp_path / "s.png", title="T")
    assert missing == "\U0002A6A5" and Image.open(png).size[0] == 1000


def test_style_interpolation_runs_from_label_to_label(tiny_generator, tmp_path):
    from model.inference import generate, interpolate, style_path
    from inference.layouts import write_interpolation
    netG, config = tiny_generator
    vectors, positions = style_path(netG, [0, 1, 0], steps=4)
    table = netG.embedder.weight.detach()
    assert len(vectors) == 7 and positions == pytest.approx([0, 1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2])
    assert torch.equal(vectors[0], table[0]) and torch.allclose(vectors[3], table[1]) and torch.allclose(
        vectors[2], table[0] / 3 + 2 * table[1] / 3)
    sources = torch.rand(3, 1, 64, 64) * 2 - 1
    frames, _ = interpolate(netG, sources, [0, 1], steps=5, batch_size=4)
    assert frames.shape == (5, 3, 1, 64, 64)
    assert torch.allclose(frames[0], generate(netG, sources, torch.zeros(3, dtype=torch.long), progress=False),
                          atol=1e-5)
    assert torch.allclose(frames[-1], generate(netG, sources, torch.ones(3, dtype=torch.long), progress=False),
                          atol=1e-5)
    png, gif = write_interpolation(tmp_path, frames, "interpolate_0-1")
    assert Image.open(png).size[1] > 5 * 64
    animation = Image.open(gif)   # there and back: 8 frames of 120 ms (Pillow merges identical neighbours)
    total = 0
    for index in range(animation.n_frames):
        animation.seek(index)
        total += animation.info["duration"]
    assert total == 8 * 120 and animation.n_frames >= 2


# ---------------------------------------------------------------- what font tools ask of a font
@pytest.fixture(scope="module")
def exports(tiny_generator, real_pairs, fonts, tmp_path_factory):
    """One style exported in every format, from the designer's drawings of 50 characters."""
    netG, _ = tiny_generator
    folder = tmp_path_factory.mktemp("exports")
    charset = folder / "chars.txt"
    charset.write_text(CHARS[:50], encoding="utf-8")
    out = {}
    for suffix in (".ttf", ".otf", ".woff2", ".ufo"):
        out[suffix] = folder / f"Style{suffix}"
        names = FontNames("Test Style", "Regular", "Version 1.000; checkpoint step 7")
        export_font(netG, 7, ExportOptions(1, fonts / "NotoSansSC-Subset.otf", out[suffix], names, str(charset),
                                           prefer_real=real_pairs, workers=1), "cpu", 64)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".ttf", ".otf"])
def test_a_font_has_spaces_vertical_metrics_and_the_tables_checkers_ask_for(suffix, exports, fonts):
    font, source = TTFont(str(exports[suffix])), TTFont(str(fonts / "NotoSansSC-Subset.otf"))
    cmap, advance = font.getBestCmap(), font["hmtx"]
    assert {0x20, 0xA0, 0x2002, 0x2003, 0x3000} <= set(cmap)
    # the source subset has no space: a quarter em, as CJK fonts have; the ideographic space is full width
    assert advance[cmap[0x20]][0] == advance[cmap[0xA0]][0] == 250 and advance[cmap[0x3000]][0] == 1000
    assert all(record.platformID == 3 for record in font["name"].names)   # no Mac records
    assert font["post"].isFixedPitch == 0 and font["OS/2"].panose.bProportion == 0   # five widths: proportional
    assert font["OS/2"].usWinAscent >= font["head"].yMax and font["OS/2"].usWinDescent >= -font["head"].yMin
    # vertical text: the source's advance height and vertical origin for every ideograph
    source_origin = source["VORG"].VOriginRecords.get(source.getBestCmap()[ord("永")], source["VORG"].defaultVertOriginY)
    glyph = cmap[ord("永")]
    height, top_bearing = font["vmtx"][glyph]
    assert "vhea" in font and height == source["vmtx"][source.getBestCmap()[ord("永")]][0] == 1000
    if suffix == ".otf":
        assert font["VORG"].VOriginRecords.get(glyph, font["VORG"].defaultVertOriginY) == source_origin
    else:   # TrueType has no VORG: the origin is the top bearing above the ink
        from fontTools.pens.boundsPen import BoundsPen
        pen = BoundsPen(font.getGlyphSet())
        font.getGlyphSet()[glyph].draw(pen)
        assert top_bearing + round(pen.bounds[3]) == source_origin
        assembly = [line.split("\t")[0] for line in font["prep"].program.getAssembly()]
        assert assembly == ["PUSHW[ ]", "511", "SCANCTRL[ ]", "PUSHB[ ]", "4", "SCANTYPE[ ]"]   # smart dropout
        assert font["gasp"].gaspRange == {0xFFFF: 0x000F}


def test_fixed_pitch_is_what_checkers_count():
    ideographs = {chr(0x4E00 + i): 1000 for i in range(200)}
    assert looks_monospaced({**ideographs, " ": 500})                 # full and half width: duospaced
    assert not looks_monospaced({**ideographs, " ": 250, "\u2002": 500})
    latin = {chr(c): 600 for c in range(0x20, 0x7F)}
    assert looks_monospaced({**latin, "i": 300, **ideographs}) and not looks_monospaced(
        {**latin, **{chr(c): 300 + c for c in range(0x41, 0x5B)}})


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".ttf", ".otf", ".woff2"])
def test_exported_fonts_pass_fontbakery_and_the_browsers_sanitizer(suffix, exports, tmp_path):
    """fontbakery's check-universal, offline, finds no FAIL and no ERROR; OTS (what browsers run) accepts the file."""
    import ots
    path = exports[suffix]
    assert ots.sanitize(str(path), str(tmp_path / f"sanitized{suffix}"), capture_output=True).returncode == 0
    if suffix == ".woff2":   # fontbakery reads OpenType files: check the font the WOFF2 holds
        with TTFont(str(path)) as woff2:
            assert woff2.flavor == "woff2"
            woff2.flavor = None
            woff2.save(str(tmp_path / "unpacked.ttf"))
        path = tmp_path / "unpacked.ttf"
    report = tmp_path / "fontbakery.json"
    subprocess.run([sys.executable, "-m", "fontbakery", "check-universal", "--skip-network", "--json", str(report),
                    str(path)], capture_output=True, text=True, timeout=600)
    results = [(check["result"], check["key"][1]) for section in json.loads(report.read_text())["sections"]
               for check in section["checks"]]
    assert len(results) > 50, results   # the checks ran
    bad = [(result, name) for result, name in results if result in ("FAIL", "ERROR", "FATAL")]
    assert bad == [], bad


@pytest.mark.slow   # shares the slow tests' four traced exports (~25 s of pure-Python tracing)
def test_the_ufo_holds_the_same_font_and_compiles_back(exports):
    import ufo2ft
    import ufoLib2
    ufo = ufoLib2.Font.open(exports[".ufo"])
    ttf = TTFont(str(exports[".ttf"]))
    cmap = ttf.getBestCmap()
    assert {glyph.name: glyph.unicodes for glyph in ufo if glyph.unicodes} == {name: [code] for code, name in
                                                                               cmap.items()}
    assert ufo["uni6C38"].width == ttf["hmtx"]["uni6C38"][0] and ufo.info.unitsPerEm == ttf["head"].unitsPerEm
    assert ufo.info.familyName == "Test Style" and ufo["uni6C38"].lib["public.verticalOrigin"] == 880
    compiled = ufo2ft.compileTTF(ufo)
    assert compiled.getBestCmap() == cmap
    assert compiled["vmtx"]["uni6C38"] == ttf["vmtx"]["uni6C38"]
    assert ufo2ft.compileOTF(ufo).getBestCmap() == cmap


CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium); "
                                             "the font's browser check cannot run here")
def test_the_woff2_sets_text_in_a_browser_across_and_down(exports, tmp_path):
    """A page with @font-face on the WOFF2: Chromium loads it, and lays the characters out along a line and,
    with writing-mode: vertical-rl, down a column (one em per character: the vertical metrics), with ink
    inside each run of text and nowhere else."""
    text = CHARS[:6]
    page = tmp_path / "page.html"
    shutil.copy(exports[".woff2"], tmp_path / "style.woff2")
    page.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><style>
@font-face {{ font-family: Exported; src: url(style.woff2) format("woff2"); font-display: block; }}
body {{ margin: 0; background: #fff; }}
span {{ font: 48px/1 Exported; position: absolute; color: #000; }}
#across {{ left: 20px; top: 20px; }}
#down {{ left: 500px; top: 20px; writing-mode: vertical-rl; }}
</style></head><body><span id="across">{text}</span><span id="down">{text}</span>
<script>document.fonts.ready.then(() => {{
  const box = id => {{ const r = document.getElementById(id).getBoundingClientRect();
                       return [r.left, r.top, r.right, r.bottom]; }};
  document.body.setAttribute('data-probe', JSON.stringify({{
    loaded: [...document.fonts].filter(f => f.family === 'Exported').map(f => f.status),
    across: box('across'), down: box('down')}}));
}});</script></body></html>""", encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=800,400"]
    dom = subprocess.run([CHROMIUM, *flags, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    import html
    import re
    found = re.search(r'data-probe="([^"]*)"', dom.stdout)
    assert found, dom.stderr[-2000:]
    probe = json.loads(html.unescape(found.group(1)))
    assert probe["loaded"] == ["loaded"]   # Chromium (and its OTS) took the font
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, "--virtual-time-budget=10000", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    ink = np.asarray(Image.open(shot).convert("L")) < 128

    def ink_box(mask):
        ys, xs = np.nonzero(mask)
        return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    across, down = ink[:, :400], ink[:, 400:]   # the page's left half holds the line, the right half the column
    x0, y0, x1, y1 = ink_box(across)
    assert x1 - x0 > 5 * 48 and y1 - y0 <= 56 and 20 <= x0 and 20 <= y0, (x0, y0, x1, y1)
    assert all(across[20:68, 20 + 48 * k:20 + 48 * (k + 1)].any() for k in range(len(text)))   # one em each
    x0, y0, x1, y1 = ink_box(down)
    assert y1 - y0 > 5 * 48 and x1 - x0 <= 56 and 100 <= x0 and 20 <= y0, (x0, y0, x1, y1)
    assert all(down[20 + 48 * k:20 + 48 * (k + 1), 100:148].any() for k in range(len(text)))   # one em each, down


def test_a_condensed_style_exports_condensed(tiny_generator, tmp_path):
    """Pairs whose targets are 0.625 times as wide (for their height) as their sources give a width scale
    of 0.625; the font's advances and glyph boxes follow it, the heights stay the source's."""
    from data.packaging import package
    from export.proportions import style_width_scale
    from fontkit import make_font
    chars = "一二三四五六七八九十"
    # the style draws each character 0.625 times as wide as the source, at the same height
    source = make_font(tmp_path / "wide.ttf", {c: [(0, 0, 800, 800 - 20 * i)] for i, c in enumerate(chars)})
    target = make_font(tmp_path / "narrow.ttf", {c: [(0, 0, 500, 800 - 20 * i)] for i, c in enumerate(chars)})
    settings = RenderSettings(64, 64)
    font2font(Font(source, 64), Font(target, 64), list(chars), settings, tmp_path / "pairs", label=1)
    package([tmp_path / "pairs"], tmp_path / "data", split_ratio=0.0)
    scale, pairs = style_width_scale(tmp_path / "data" / "train.obj", 1)
    assert pairs == 10 and scale == pytest.approx(0.625, abs=0.03)
    netG, _ = tiny_generator
    (tmp_path / "chars.txt").write_text(chars, encoding="utf-8")
    fonts_made = {}
    for name, width_scale in (("plain", 1.0), ("condensed", round(scale, 2))):
        out = tmp_path / f"{name}.ttf"
        export_font(netG, 1, ExportOptions(1, source, out, FontNames(name), str(tmp_path / "chars.txt"),
                                           prefer_real=tmp_path / "pairs", workers=1, width_scale=width_scale),
                    "cpu", 64)
        fonts_made[name] = TTFont(str(out))
    for font, expected in ((fonts_made["plain"], 1.0), (fonts_made["condensed"], round(scale, 2))):
        glyph = font.getBestCmap()[ord("一")]
        glyphs = font.getGlyphSet()
        from fontTools.pens.boundsPen import BoundsPen
        pen = BoundsPen(glyphs)
        glyphs[glyph].draw(pen)
        x0, y0, x1, y1 = pen.bounds
        assert font["hmtx"][glyph][0] == round(1000 * expected)           # the advance follows the style
        assert (x1 - x0, y1 - y0) == pytest.approx((500, 800), rel=0.03)   # the style's drawing at the source's height
        assert (x0 + x1) / 2 == pytest.approx(400 * expected, rel=0.05)    # where the source's sits, scaled
