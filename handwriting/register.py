"""Finding a sheet in a scan or photo: its markers, the perspective, its QR code, its sharpness.

The four ArUco markers give 16 corner points whose places on the page are known, so one
homography maps page millimetres to image pixels whatever the scanner's resolution, the
camera's tilt or the page's turn (each marker's id says which corner it is, so a page
upside down or sideways is simply read the right way round).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from utils.errors import UserError

from .sheet import CORNERS, Layout, Page, parse_qr
from .template import aruco_dictionary

MIN_DPI = 150         # below this a 15 mm cell is under 90 pixels: strokes blur into each other
MAX_EDGE_SPREAD = 0.40  # mm an edge may be smeared over (Gaussian sigma ~0.23 mm): past it the QR code is lost
MAX_MISFIT = 0.6      # mm the markers may stray from one flat page
FRAME_SEARCH = 1.2    # mm around its expected place a cell's printed frame is looked for


@dataclass
class RegisteredPage:
    name: str
    gray: np.ndarray
    homography: np.ndarray   # page mm -> image pixels
    page: Page
    dpi: float
    turned: int              # degrees the page was turned in the image: 0, 90, 180 or 270


def find_markers(gray: np.ndarray) -> dict[int, np.ndarray]:
    """Marker id -> its 4 corners in image pixels (top-left, top-right, bottom-right, bottom-left
    of the marker as printed), for the ids 0-3 a sheet has."""
    import cv2
    params = cv2.aruco.DetectorParameters()
    # sub-pixel corners: the contour's corners are whole pixels, and a pixel's error at the page's
    # edge is most of a pixel's shift in every cell across it
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    detector = cv2.aruco.ArucoDetector(aruco_dictionary(), params)
    corners, ids, _ = detector.detectMarkers(gray)
    found = {}
    for quad, marker_id in zip(corners, [] if ids is None else ids.ravel()):
        if int(marker_id) in range(4) and int(marker_id) not in found:
            found[int(marker_id)] = quad.reshape(4, 2).astype(np.float64)
    return found


def page_homography(layout: Layout, markers: dict[int, np.ndarray]) -> tuple[np.ndarray, float]:
    """The homography page mm -> image px from the markers' corners, and its worst misfit (mm)."""
    import cv2
    page_points, image_points = [], []
    for marker_id, (x, y, side) in layout.geometry.marker_boxes().items():
        page_points += [(x, y), (x + side, y), (x + side, y + side), (x, y + side)]
        image_points += list(markers[marker_id])
    page_points = np.array(page_points, np.float64)
    image_points = np.array(image_points, np.float64)
    homography, _ = cv2.findHomography(page_points, image_points, 0)
    back = cv2.perspectiveTransform(image_points[None], np.linalg.inv(homography))[0]
    return homography, float(np.abs(back - page_points).max())


def warp(gray: np.ndarray, homography: np.ndarray, box: tuple[float, ...], size: int) -> np.ndarray:
    """The box (x, y, side) or (x, y, width, height) in page mm cut from the image as size x size pixels."""
    import cv2
    x, y, width, height = box if len(box) == 4 else (*box, box[2])
    step_x, step_y = width / size, height / size
    to_page = np.array([[step_x, 0, x + step_x / 2], [0, step_y, y + step_y / 2], [0, 0, 1]])
    return cv2.warpPerspective(gray, homography @ to_page, (size, size),
                               flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def edge_spread_mm(gray: np.ndarray, corners: np.ndarray, side_mm: float) -> float:
    """How far one marker's black-white edges are smeared (mm): the grey pixels between black and
    white over the length of the edges, measured on the marker straightened from its own corners
    (so it needs no other marker). A sharp print scanned at 300 dpi gives about 0.1 mm."""
    import cv2
    px_per_mm, margin = 20, 1.0
    size = int((side_mm + 2 * margin) * px_per_mm)
    square = np.array([[margin, margin], [margin + side_mm, margin], [margin + side_mm, margin + side_mm],
                       [margin, margin + side_mm]], np.float32) * px_per_mm
    to_image = cv2.getPerspectiveTransform(square, corners.astype(np.float32))
    patch = cv2.warpPerspective(gray, to_image, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    dark, light = np.percentile(patch, 5), np.percentile(patch, 95)
    if light - dark < 20:
        return float("inf")
    level = (patch - dark) / (light - dark)
    grey = ((level > 0.2) & (level < 0.8)).sum()
    binary = (level > 0.5).astype(np.uint8)
    edges = cv2.morphologyEx(binary, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).sum() / 2
    return float(grey / max(edges, 1) / px_per_mm)


def read_qr(gray: np.ndarray, homography: np.ndarray, layout: Layout) -> str:
    """The text of the page's QR code, or "" when none can be read. OpenCV's decoders miss some
    clean codes at one scale and read them at another, so a few scales and both decoders are tried."""
    import cv2
    x, y, side = layout.geometry.qr_box()
    detectors = [cv2.QRCodeDetector()]
    if hasattr(cv2, "QRCodeDetectorAruco"):
        detectors.append(cv2.QRCodeDetectorAruco())
    for px_per_mm in (10, 8, 12, 16, 6):
        patch = warp(gray, homography, (x - 2, y - 2, side + 4), int((side + 4) * px_per_mm))
        binary = cv2.threshold(patch, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[1]
        for detector in detectors:
            for candidate in (patch, binary):
                try:
                    text, _, _ = detector.detectAndDecode(candidate)
                except cv2.error:
                    continue
                if text:
                    return text
    return ""


def turned_degrees(homography: np.ndarray, layout: Layout) -> int:
    """How the page lies in the image: the direction of its top edge, to the nearest quarter turn."""
    import cv2
    width, _ = layout.geometry.page_size
    ends = cv2.perspectiveTransform(np.array([[[0.0, 0.0], [width, 0.0]]]), homography)[0]
    angle = math.degrees(math.atan2(ends[1, 1] - ends[0, 1], ends[1, 0] - ends[0, 0]))
    return int(round(angle / 90.0)) % 4 * 90


def register(name: str, gray: np.ndarray, layout: Layout) -> RegisteredPage:
    """Find the sheet in one scan; anything that stops it being read is one UserError naming the file."""
    geometry = layout.geometry
    page_width, page_height = geometry.page_size
    markers = find_markers(gray)
    if not markers:
        # a whole page in the frame at MIN_DPI needs this many pixels along its long side
        needed = round(page_height / 25.4 * MIN_DPI)
        if max(gray.shape) < needed:
            raise UserError(f"{name}: too small to read ({gray.shape[1]} x {gray.shape[0]} pixels); a page needs "
                            f"at least {MIN_DPI} dpi, about {round(page_width / 25.4 * MIN_DPI)} x {needed} "
                            f"pixels: scan at 300 dpi, or photograph the page closer")
        raise UserError(f"{name}: no corner markers found; is it a page of the template, with the four "
                        f"black corner squares in view and in focus?")
    # blur first: a blurred photo loses markers too, and then a missing corner would be the wrong advice
    spread = max(edge_spread_mm(gray, corners, geometry.marker) for corners in markers.values())
    if spread > MAX_EDGE_SPREAD:
        raise UserError(f"{name}: too blurred to read (edges smeared over {spread:.2f} mm, at most "
                        f"{MAX_EDGE_SPREAD} mm reads); hold the camera still and focus on the page, or scan "
                        f"at 300 dpi")
    missing = [CORNERS[i] for i in range(4) if i not in markers]
    if missing:
        names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
        raise UserError(f"{name}: the page's {names} corner marker{'s are' if len(missing) > 1 else ' is'} "
                        f"not in the picture (cut off or covered); scan or photograph the whole page with all "
                        f"four corner squares")
    homography, misfit = page_homography(layout, markers)
    side_px = np.mean([np.linalg.norm(np.roll(q, -1, axis=0) - q, axis=1).mean() for q in markers.values()])
    dpi = float(side_px / geometry.marker * 25.4)
    if dpi < 0.95 * MIN_DPI:   # a 150 dpi scan measures a little under or over 150
        raise UserError(f"{name}: too small to read: the page is at about {dpi:.0f} dpi and reading needs at "
                        f"least {MIN_DPI} dpi ({round(page_width / 25.4 * MIN_DPI)} x "
                        f"{round(page_height / 25.4 * MIN_DPI)} pixels for the page): scan at 300 dpi, "
                        f"or photograph the page closer")
    if misfit > MAX_MISFIT:
        raise UserError(f"{name}: the corner markers do not lie on one flat page (off by {misfit:.1f} mm); "
                        f"flatten the paper and scan or photograph it again")
    fields = parse_qr(read_qr(gray, homography, layout))
    if fields is None:
        raise UserError(f"{name}: the page's QR code cannot be read (covered, stained or not this template's); "
                        f"keep the code in the top-right corner clean and scan again")
    if fields["charset"] != layout.digest or fields["layout"] != layout.geometry.digest():
        raise UserError(f"{name}: this page is from another template (charset {fields['charset']}, layout "
                        f"{fields['layout']}, {fields['pages']} pages); --layout is charset {layout.digest}, "
                        f"layout {layout.geometry.digest()}: read it with the layout file printed with it")
    number = int(fields["page"])
    if not 1 <= number <= len(layout.pages):
        raise UserError(f"{name}: page {number} is not in --layout ({len(layout.pages)} pages)")
    return RegisteredPage(name, gray, homography, layout.page(number), dpi, turned_degrees(homography, layout))


def found_frame(gray: np.ndarray, homography: np.ndarray, frame: tuple[float, float, float],
                guess: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float, float, float]:
    """Where a cell's printed frame really is: the offsets (mm) of its left, right, top and bottom
    lines from where the page's homography puts them.

    Paper that is not flat (curled, bent over a book's spine) and a phone lens's distortion move
    the cells in the middle of a page by a millimetre or more while the corner markers stay put,
    and even a flat page's homography is off by a few hundredths of a millimetre inside it, which
    a 256-pixel glyph feels. The frame's two opposite lines are found together, a frame's side
    apart (so a neighbour's line, a column gap away, is never taken for this one), in the median
    darkness across each line (so ink or a label crossing it does not count). Where no line stands
    out (a faint print, a stain), that direction keeps the guess. The search runs FRAME_SEARCH
    either side of `guess` (mm), so a page bent further than that is followed cell by cell from
    its neighbours' offsets.
    """
    px_per_mm = 20
    margin = FRAME_SEARCH + 0.3
    x, y, side = frame
    x, y = x + guess[0], y + guess[1]
    size = int(round((side + 2 * margin) * px_per_mm))
    patch = warp(gray, homography, (x - margin, y - margin, side + 2 * margin), size).astype(np.float32)
    darkness = np.percentile(patch, 95) - patch          # 0 on paper
    across = slice(int(size * 0.2), int(size * 0.8))      # away from the corners
    reach = int(round(FRAME_SEARCH * px_per_mm))
    # where the lines' centres should be, in pixel indices (pixel i covers i-0.5 .. i+0.5)
    expected = (margin * px_per_mm - 0.5, (margin + side) * px_per_mm - 0.5)
    first, second = (int(round(e)) for e in expected)
    shifts = []
    for axis in (1, 0):   # columns (x), then rows (y)
        profile = np.median(darkness[across, :] if axis == 1 else darkness[:, across], axis=1 - axis)
        pair = [profile[first + k] + profile[second + k] for k in range(-reach, reach + 1)]
        best = int(np.argmax(pair)) - reach
        # each line then on its own, a little way either side: bent paper stretches a cell too
        lines = []
        for joint in (first + best, second + best):
            near = np.arange(max(joint - 12, 4), min(joint + 13, len(profile) - 4))   # 0.6 mm
            lines.append(int(near[np.argmax(profile[near])]))
        base = guess[0] if axis == 1 else guess[1]
        if min(profile[lines[0]], profile[lines[1]]) < 25:   # no frame line there
            shifts += [base, base]
            continue
        for line, where in zip(lines, expected):
            # the line's centre to a fraction of a pixel: a tenth of a millimetre is a 2-pixel
            # shift of a 256-pixel glyph, which costs a tenth of its IoU
            around = np.arange(line - 4, line + 5)
            weight = np.clip(profile[around] - 0.25 * profile[line], 0, None)
            shifts.append(base + (float((around * weight).sum() / weight.sum()) - where) / px_per_mm)
    return tuple(shifts)


def writing_box(cell, lines: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The cell's writing square (x, y, width, height in page mm) moved and stretched as its frame was."""
    left, right, top, bottom = lines
    fx, fy, frame = cell.frame
    x, y, side = cell.writing
    scale_x, scale_y = 1 + (right - left) / frame, 1 + (bottom - top) / frame
    return (x + left + (x - fx) * (scale_x - 1), y + top + (y - fy) * (scale_y - 1), side * scale_x, side * scale_y)
