"""The unseen-style evaluation set (issue 17) and the sketch preparation it measures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from modelverse.evaluation import unseen_queries
from modelverse.evaluation.drawings import CANVAS, Style, draw_no_match, draw_numeral, draw_shape
from modelverse.evaluation.unseen_queries import build_unseen_suite, manifest_words, paraphrase_queries, words
from modelverse.query.sketches import SIZE, prepare_sketch
from modelverse.zoo import bundled_manifest, heldout_images


def test_no_paraphrase_shares_a_word_with_its_models_manifest_entries() -> None:
    entries = bundled_manifest()
    by_id = {e.id: e for e in entries}
    queries = paraphrase_queries(entries)
    assert len(queries) == len(unseen_queries.PARAPHRASES)  # every concept has models in the zoo
    for query in queries:
        assert query.ground_truth
        for model_id in query.ground_truth:
            assert not words(query.text) & manifest_words(by_id[model_id]), query.text


def test_a_paraphrase_that_reuses_the_manifest_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(unseen_queries, "PARAPHRASES", (("running shoes", "sneaker"),))
    with pytest.raises(ValueError, match="reuses manifest words.*shoe"):
        paraphrase_queries(bundled_manifest())


def test_the_suite_has_every_kind_of_query_and_no_match_ones_have_no_truth() -> None:
    suite = build_unseen_suite([e for e in bundled_manifest() if e.id.startswith(("fashion-", "digiface"))])
    kinds = {(q.modality, q.style) for q in suite}
    for style in Style:
        assert ("sketch", style.value) in kinds
    assert {("text", "paraphrase"), ("text", "no-match"), ("image", "photo"), ("image", "no-match"),
            ("sketch", "no-match"), ("image", "product-photo")} <= kinds
    assert all(q.has_match != (q.style == "no-match") for q in suite)
    assert all((q.picture is None) == (q.modality == "text") for q in suite)


def ink_box(picture: Image.Image) -> tuple[int, int, int, int]:
    dark = np.asarray(picture.convert("L")) < 128
    rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def test_drawings_are_black_on_white_in_their_style() -> None:
    pixels = heldout_images("fashion-mnist", "sneaker", limit=1)[0]
    for style in Style:
        picture = draw_shape(pixels, style)
        assert picture.size == (CANVAS, CANVAS) and np.asarray(picture)[0, 0].tolist() == [255, 255, 255]
    small = ink_box(draw_shape(pixels, Style.SMALL))
    assert small[2] - small[0] < CANVAS / 2
    thin = (np.asarray(draw_shape(pixels, Style.THIN).convert("L")) < 128).mean()
    filled = (np.asarray(draw_shape(pixels, Style.SILHOUETTE).convert("L")) < 128).mean()
    assert filled > 3 * thin
    assert draw_numeral(7, bold=True).size == (CANVAS, CANVAS)
    assert ink_box(draw_no_match("house"))
    with pytest.raises(ValueError, match="blank"):
        draw_shape(np.zeros((28, 28, 3), np.uint8), Style.THIN)


def test_prepare_sketch_centres_fills_the_frame_and_thins_strokes() -> None:
    page = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(page).rectangle((20, 20, 80, 60), outline="black", width=9)  # small, off-centre, thick
    prepared = prepare_sketch(page)
    assert prepared.size == (SIZE, SIZE)
    left, top, right, bottom = ink_box(prepared)
    assert right - left > 0.8 * SIZE and abs((left + right) / 2 - SIZE / 2) < 3 and abs((top + bottom) / 2 - SIZE / 2) < 30
    ink = np.asarray(prepared.convert("L")) < 128
    assert ink[SIZE // 2, left: left + 8].sum() <= 4  # a 2-3 px line, not a 9 px marker scaled up


def test_prepare_sketch_outlines_a_silhouette_and_reads_white_on_black() -> None:
    dark = Image.new("RGB", (200, 200), "black")
    ImageDraw.Draw(dark).ellipse((50, 50, 150, 150), fill="white")  # a filled disc, white on black
    prepared = np.asarray(prepare_sketch(dark).convert("L")) < 128
    assert prepared[0, 0] == False  # noqa: E712  (white page)
    assert not prepared[SIZE // 2, SIZE // 2]  # the inside is not filled: an outline
    assert prepared[SIZE // 2].sum() <= 8


def test_a_blank_sketch_stays_a_blank_page() -> None:
    blank = prepare_sketch(Image.new("RGB", (50, 80), "white"))
    assert blank.size == (SIZE, SIZE) and np.asarray(blank).min() == 255
