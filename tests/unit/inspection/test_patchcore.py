"""PatchCore on the offline EfficientNet-Lite0: memory bank, leave-one-out threshold,
position-aware scoring, labelled defects and boxes."""

from __future__ import annotations

import numpy as np
import pytest

from percept.inspection import engine, patchcore
from percept.inspection.algorithms import ALGORITHMS, DEFAULT_ALGORITHM
from percept.inspection.imaging import find_boxes
from percept.inspection.patchcore import PatchCoreDetector, greedy_coreset, nearest_distance
from tests.synthetic import inspection as synthetic


def test_patchcore_is_the_default_and_typed() -> None:
    assert DEFAULT_ALGORITHM == "patchcore" and next(iter(ALGORITHMS)) == "patchcore"
    spec = ALGORITHMS["patchcore"]
    described = {p["name"]: p for p in spec.describe()["parameters"]}
    assert described["feature_blocks"] == described["feature_blocks"] | {"data_type": "tuple", "value": "[2, 4, 10]"}
    assert described["coreset_ratio"]["data_type"] == "float" and described["position_aware"]["value"] == "-1"
    values = spec.resolve([(413, "0.25"), (414, "1"), (411, "[3, 9]")])
    assert values["coreset_ratio"] == 0.25 and values["position_aware"] == 1 and values["feature_blocks"] == (3, 9)
    assert spec.resolve([(411, "[4]")])["feature_blocks"] == (4,)
    for bad in ("[4, 99]", "[1, 2, 3, 4, 5]", "[]"):
        with pytest.raises(ValueError):
            spec.resolve([(411, bad)])


def test_a_stride_4_block_joins_the_stride_8_grid() -> None:
    """Blocks 2 (stride 4), 4 (stride 8) and 10 (stride 16): one 176-d feature per 8×8
    network-input pixels (the image goes in at ``input_size`` = 256), not four times the
    patches; without block 2 the same grid, 152-d (the colour and lightness levels off)."""
    image = np.random.default_rng(7).random((128, 128, 3)).astype(np.float32)
    dims = {}
    for blocks in ((2, 4, 10), (4, 10)):
        detector = PatchCoreDetector(ALGORITHMS["patchcore"].resolve([(411, str(list(blocks))), (427, "0"), (428, "0")]))
        detector.attach(engine.default_backbone())
        feats = detector.embed([image])[0]
        assert feats.shape[:2] == (32, 32)
        dims[blocks] = feats.shape[2]
    assert dims == {(2, 4, 10): 24 + 40 + 112, (4, 10): 40 + 112}


def test_the_colour_level_sees_a_local_tint_not_a_colour_cast() -> None:
    """With ``colour_weight`` > 0 every patch also carries its white-balanced CIELAB chroma
    (two more dimensions): a camera's colour cast over the whole image leaves it about
    where it was, a brownish tint on part of the image moves those cells, and a gray image
    has none."""
    rng = np.random.default_rng(8)
    # a coloured product: bluish and brownish areas, noise
    image = np.zeros((128, 128, 3), np.float32)
    image[:, :64] = (0.55, 0.60, 0.80)
    image[:, 64:] = (0.65, 0.45, 0.30)
    image = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1).astype(np.float32)
    cast = np.clip(image * np.array([1.08, 1.0, 0.92], np.float32), 0, 1)
    tinted = image.copy()
    tinted[16:48, 16:48] = 0.55 * tinted[16:48, 16:48] + 0.45 * np.array([0.75, 0.45, 0.15], np.float32)
    detector = PatchCoreDetector(ALGORITHMS["patchcore"].resolve(None))
    detector.attach(engine.default_backbone())
    chroma = slice(176, 178)  # after the 176 network dimensions; the lightness level follows
    plain, after_cast, after_tint = (f[..., chroma] for f in detector.embed([image, cast, tinted]))
    assert detector.embed([image])[0].shape[-1] == 24 + 40 + 112 + 2 + 1
    moved = np.linalg.norm(after_tint - plain, axis=-1)  # 32×32 cells, 4 px each at 128 px in
    assert moved[6:10, 6:10].min() > 0.3 > 5 * np.linalg.norm(after_cast - plain, axis=-1).mean()
    assert moved[:, 20:].max() < 0.1  # far from the tint: unchanged
    gray = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2) * np.array([1.05, 1.0, 0.95], np.float32)
    assert np.abs(detector.embed([gray])[0][..., chroma]).max() < 0.1


def test_the_lightness_level_sees_a_relit_piece_not_a_global_gain() -> None:
    """With ``luminance_weight`` > 0 (the default) every patch also carries its cell's L*
    less the image's mean L*: a piece of the image made 25 % darker (a re-lit cut-and-paste)
    moves those cells, while a global gain and offset (the camera's exposure) barely moves
    any; with ``luminance_weight`` = 0 there is no such dimension."""
    rng = np.random.default_rng(9)
    image = np.clip(0.5 + rng.normal(0, 0.08, (128, 128, 3)), 0, 1).astype(np.float32)
    image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)  # a gray texture
    exposed = np.clip(image * 1.08 + 0.03, 0, 1)
    relit = image.copy()
    relit[16:48, 16:48] *= 0.75
    spec = ALGORITHMS["patchcore"].resolve(None)
    assert spec["luminance_weight"] > 0
    detector = PatchCoreDetector(spec)
    detector.attach(engine.default_backbone())
    plain, after_gain, after_relight = (f[..., -1] for f in detector.embed([image, exposed, relit]))
    moved = np.abs(after_relight - plain)  # 32×32 cells, 4 px each at 128 px in
    assert moved[6:10, 6:10].min() > 0.3 > 5 * np.abs(after_gain - plain).mean()
    assert np.abs(after_gain - plain).max() < 0.1
    off = PatchCoreDetector(ALGORITHMS["patchcore"].resolve([(428, "0")]))
    off.attach(engine.default_backbone())
    assert off.embed([image])[0].shape[-1] == 24 + 40 + 112 + 2


def test_greedy_coreset_keeps_the_outliers_and_covers_the_rest() -> None:
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(2000, 8)).astype(np.float32)
    cloud[:3] += 40.0  # three far outliers: a coreset must keep them
    picked = greedy_coreset(cloud, 200, projection=8)
    assert len(set(picked.tolist())) == 200 and {0, 1, 2} <= set(picked.tolist())
    covering = nearest_distance(cloud, cloud[picked]).max()
    random_pick = rng.choice(len(cloud), 200, replace=False)
    assert covering < nearest_distance(cloud, cloud[random_pick]).max()


def test_nearest_distance_is_exact() -> None:
    rng = np.random.default_rng(1)
    q, b = rng.normal(size=(50, 6)), rng.normal(size=(70, 6))
    expected = np.sqrt(((q[:, None] - b[None]) ** 2).sum(-1)).min(axis=1)
    np.testing.assert_allclose(nearest_distance(q, b, chunk=16), expected, rtol=1e-4, atol=1e-4)


def test_patchcore_flags_defects_passes_good_images_and_stores_small() -> None:
    rng = np.random.default_rng(5)
    goods = synthetic.good_images("coins", 14, rng, size=128)
    params = ALGORITHMS["patchcore"].resolve(None)
    trained = engine.train("patchcore", params, goods[:10])
    blob = trained.to_bytes()
    assert len(blob) < 2_000_000  # the memory bank, not the backbone
    model = engine.TrainedModel.from_bytes(blob)
    # The threshold comes from the good images alone: above every leave-one-out score.
    assert model.threshold > model.median and model.info["calibration_images"] == 10
    for good in goods[10:]:
        assert engine.predict(model, good).good
    for family in ("blob", "scratch", "stain"):
        bad, mask = synthetic.add_defect(goods[12], family, rng, fraction=0.04 if family != "scratch" else 0.02)
        found = engine.predict(model, bad)
        assert not found.good, family
        ys, xs = mask.nonzero()
        assert any(b["x_min"] <= xs.mean() <= b["x_max"] and b["y_min"] <= ys.mean() <= b["y_max"]
                   for b in found.boxes), family


def test_a_model_stored_before_the_colour_level_still_predicts() -> None:
    """Detectors pickled before ``colour_weight`` existed have no ``colour`` attribute and no
    chroma columns in their bank: they load as colour-free and predict."""
    rng = np.random.default_rng(6)
    goods = synthetic.good_images("coins", 8, rng, size=96)
    params = {**ALGORITHMS["patchcore"].resolve(None), "colour_weight": 0.0}
    trained = engine.train("patchcore", params, goods[:6])
    del trained.detector.colour  # as an older release stored it
    del trained.detector.fine, trained.detector.fine_bank_  # nor had it a stride-4 bank
    model = engine.TrainedModel.from_bytes(trained.to_bytes())
    assert model.detector.colour == 0.0 and model.detector.fine == 0.0
    assert engine.predict(model, goods[6]).good


def _parts(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """An aligned product: two light squares on a dark plate, shifted by a pixel or two."""
    out = []
    for _ in range(count):
        img = np.full((192, 192, 3), 40, np.uint8)
        dy, dx = rng.integers(-2, 3, size=2)
        img[30 + dy : 54 + dy, 30 + dx : 54 + dx] = 200
        img[130 + dy : 154 + dy, 130 + dx : 154 + dx] = 200
        out.append(np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8))
    return out


def test_aligned_parts_are_scored_in_place_and_a_missing_part_is_found() -> None:
    """``position_aware = -1`` sees that the parts are aligned and compares each patch with
    the training patches of the same place; a missing square is then found where it was."""
    rng = np.random.default_rng(2)
    goods = _parts(12, rng)
    missing = goods[11].copy()
    missing[126:158, 126:158] = 40
    spec = ALGORITHMS["patchcore"]
    auto = engine.train("patchcore", spec.resolve(None), goods[:10])
    assert auto.info["position_aware"] is True and auto.detector.weight_ > 0
    assert engine.predict(auto, goods[10]).good
    found = engine.predict(auto, missing)
    assert not found.good
    box = found.boxes[0]
    assert box["x_min"] <= 142 <= box["x_max"] and box["y_min"] <= 142 <= box["y_max"]
    assert (box["x_max"] - box["x_min"]) < 96  # about the square, not the whole plate
    off = engine.train("patchcore", spec.resolve([(414, "0")]), goods[:10])
    assert off.info["position_aware"] is False and off.detector.weight_ == 0


def test_textures_are_not_treated_as_aligned() -> None:
    rng = np.random.default_rng(3)
    model = engine.train("patchcore", ALGORITHMS["patchcore"].resolve(None), synthetic.good_images("gravel", 8, rng, size=128))
    assert model.info["position_aware"] is False


def test_the_good_only_threshold_flags_few_fresh_good_images() -> None:
    """Image scores of good images are right-skewed (each is a maximum over the map). Over
    many draws of 20 leave-one-out scores the default threshold flags about 1 % of fresh
    good images from the same distribution; a plain mean + 2 sd of the same scores flags
    several times more."""
    rng = np.random.default_rng(11)
    sigmas = ALGORITHMS["patchcore"].resolve(None)["threshold_sigmas"]
    median, ours, plain = 0.01, [], []
    for _ in range(400):
        loo = median + rng.lognormal(-2.0, 0.35, 20)
        fresh = median + rng.lognormal(-2.0, 0.35, 200)
        ours.append(np.mean(fresh > engine.good_threshold(loo, median, sigmas)))
        plain.append(np.mean(fresh > loo.mean() + 2.0 * loo.std()))
    assert np.mean(ours) < 0.02 < np.mean(plain)
    # the rule is in units of the scores: stretching them about the median stretches it
    loo = median + rng.lognormal(-2.0, 0.35, 20)
    t = engine.good_threshold(loo, median, sigmas)
    assert engine.good_threshold(median + 3 * (loo - median), median, sigmas) == pytest.approx(median + 3 * (t - median))
    assert t > loo.max() * 0.9
    # a duplicated good image scores at the median pixel (its twin is in the bank): one or two
    # such scores leave the threshold where it was, not orders of magnitude above every score
    for twin_score in (median, median + 1e-4):  # a copy; a re-saved copy
        for twins in (1, 2):
            moved = engine.good_threshold([twin_score] * twins + list(loo), median, sigmas)
            assert t / 1.5 < moved < t * 1.5, (twin_score, twins)
    # with under five images: above the highest
    assert engine.good_threshold([0.2, 0.3], 0.1, sigmas) > 0.3


def test_labelled_defects_move_the_threshold() -> None:
    good = [1.0 + 0.05 * i for i in range(20)]  # 1.00 … 1.95
    floor = float(np.quantile(good, 0.95))
    # defects under the good-only threshold pull it down to catch them, never under the
    # level that would flag more than 5 % of the good images
    lowered = engine.labelled_threshold(good, [1.93, 1.97, 2.0], base=2.2)
    assert floor <= lowered < 1.93
    assert engine.labelled_threshold(good, [0.5], base=2.2) == 2.2  # an unreachable defect moves nothing
    assert engine.labelled_threshold(good, [], base=2.2) == 2.2
    assert engine.labelled_threshold(good, [5.0, 6.0], base=2.2) == 2.2  # far-away defects: as before


def test_labelled_defect_images_are_used_in_training() -> None:
    rng = np.random.default_rng(4)
    goods = synthetic.good_images("coins", 10, rng, size=128)
    faint = [synthetic.add_defect(synthetic.good_image("coins", rng, 128), "stain", rng, 0.02)[0] for _ in range(3)]
    params = ALGORITHMS["patchcore"].resolve([(419, "8.0")])  # a deliberately high good-only threshold
    plain = engine.train("patchcore", params, goods)
    helped = engine.train("patchcore", params, goods, defects=faint)
    assert helped.info["defect_images"] == 3
    assert helped.threshold <= plain.threshold
    assert helped.info["good_only_threshold"] == pytest.approx(plain.threshold, rel=1e-3)


def test_boxes_grow_from_the_threshold_and_merge_when_close() -> None:
    norm = np.zeros((64, 64), np.float32)
    norm[10:20, 10:20] = 0.8
    norm[14:16, 14:16] = 1.5  # its seed above the threshold
    norm[10:20, 30:37] = 0.8  # a second defect 10 px to the right
    norm[14, 33] = 1.2
    norm[40:50, 40:50] = 0.8  # under the threshold everywhere: not a defect
    seeds = find_boxes(norm, 1.0, 1, 1.0, (64, 64))
    assert sorted((b["x_min"], b["x_max"]) for b in seeds) == [(14, 15), (33, 33)]
    grown = find_boxes(norm, 1.0, 1, 1.0, (64, 64), grow=0.5)
    assert sorted((b["x_min"], b["x_max"], b["y_min"], b["y_max"]) for b in grown) == [(10, 19, 10, 19), (30, 36, 10, 19)]
    assert grown[0]["score"] == 1.5  # the strongest first
    merged = find_boxes(norm, 1.0, 1, 1.0, (64, 64), grow=0.5, merge=12)
    assert [(b["x_min"], b["x_max"], b["y_min"], b["y_max"]) for b in merged] == [(10, 36, 10, 19)]


def test_a_model_without_its_backbone_says_so() -> None:
    detector = PatchCoreDetector(ALGORITHMS["patchcore"].resolve(None))
    with pytest.raises(RuntimeError, match="backbone"):
        detector.anomaly_maps([np.zeros((32, 32, 3), np.float32)])


def test_single_image_requests_share_forward_passes() -> None:
    """What the batched backbone deployment runs: requests with the same blocks and size go
    through the network together and each gets exactly its own maps back."""
    from percept.inspection.engine import default_backbone
    from percept.inspection.patchcore import feature_maps_grouped

    real = default_backbone()
    calls: list[int] = []

    class Counting:
        name = real.name

        def feature_maps(self, images: list[np.ndarray], blocks: tuple[int, ...], size: tuple[int, int]) -> list[np.ndarray]:
            calls.append(len(images))
            return real.feature_maps(images, blocks, size)

    rng = np.random.default_rng(6)
    images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    requests = [(images[0], (4, 10), (64, 64)), (images[1], (4,), (96, 96)), (images[2], (4, 10), (64, 64))]
    out = feature_maps_grouped(Counting(), requests)
    assert sorted(calls) == [1, 2]
    alone = real.feature_maps([images[2]], (4, 10), (64, 64))
    assert [m.shape for m in out[2]] == [(1, 40, 8, 8), (1, 112, 4, 4)]
    np.testing.assert_allclose(out[2][0], alone[0], atol=1e-4)
    assert out[1][0].shape == (1, 40, 12, 12)


def test_image_score_is_the_max_or_the_mean_of_the_hottest_share() -> None:
    score_map = np.zeros((100, 100), np.float32)
    score_map[0, :10] = 10.0  # ten hot pixels: 0.1 % of the map
    score_map[50, 50] = 20.0  # one hotter pixel
    spec = ALGORITHMS["patchcore"]
    assert PatchCoreDetector(spec.resolve([(424, "0")])).image_score(score_map) == 20.0
    # the mean of the hottest 0.2 % (20 pixels): one at 20, ten at 10, nine at 0 → 120 / 20
    assert PatchCoreDetector(spec.resolve([(424, "0.002")])).image_score(score_map) == pytest.approx(6.0)


def test_image_relative_scores_ignore_what_shifts_every_patch() -> None:
    """A blurred or differently lit good image moves every patch's distance; scoring each
    patch against the image's own median distance leaves only what stands out locally."""
    grid = np.random.default_rng(8).random((32, 32)).astype(np.float32)
    detector = PatchCoreDetector(ALGORITHMS["patchcore"].resolve([(426, "1")]))
    np.testing.assert_allclose(detector._relative(grid + 3.0), detector._relative(grid), atol=1e-5)
    plain = PatchCoreDetector(ALGORITHMS["patchcore"].resolve([(426, "0")]))
    np.testing.assert_array_equal(plain._relative(grid), grid)


def test_the_fine_level_is_a_stride_4_bank_that_sharpens_small_defects() -> None:
    """With ``fine_weight`` > 0 the model also keeps a bank of block 2's features on its own
    stride-4 grid (24-d, a ``fine_coreset_ratio`` coreset: 10 images × 64² cells × 0.05 =
    2048 rows), stored with the model, and its distances join the map: a 3×3 px speck on a
    texture (smaller than a stride-8 cell with its neighbours) stands further above the same
    image's good score than without it."""
    rng = np.random.default_rng(12)
    goods = synthetic.good_images("brick", 12, rng, size=128)
    spec = ALGORITHMS["patchcore"]
    on = engine.TrainedModel.from_bytes(
        engine.train("patchcore", spec.resolve([(429, "1"), (430, "0.05")]), goods[:10]).to_bytes())
    off = engine.train("patchcore", spec.resolve([(429, "0")]), goods[:10])
    assert on.detector.fine_bank_ is not None and on.detector.fine_bank_.shape == (2048, 24)
    assert on.info["fine_bank"] == 2048 and off.detector.fine_bank_ is None
    margins: dict[str, list[float]] = {"on": [], "off": []}
    for good in goods[10:]:
        for y, x in ((40, 40), (90, 70)):
            bad = good.copy()
            bad[y : y + 3, x : x + 3] = 255 - bad[y : y + 3, x : x + 3]
            for key, model in (("on", on), ("off", off)):
                found = engine.predict(model, bad)
                peak = np.unravel_index(int(found.norm_map.argmax()), found.norm_map.shape)
                if key == "on":
                    assert abs(peak[0] - y - 1) <= 3 and abs(peak[1] - x - 1) <= 3  # the map peaks on the speck
                margins[key].append(found.score - engine.predict(model, good).score)
    assert all(a >= b - 0.02 for a, b in zip(margins["on"], margins["off"], strict=True)), margins
    assert sum(margins["on"]) > 1.2 * sum(margins["off"]), margins


def test_the_fine_level_needs_a_block_finer_than_the_stride_8_grid() -> None:
    """Without a block finer than the stride-8 grid (blocks 4 and 10) there is no fine bank
    (it would duplicate the main one); a stride-2 block (0) gives a stride-4 fine grid, not
    a stride-2 one (four times the cells and the bank rows)."""
    rng = np.random.default_rng(14)
    goods = synthetic.good_images("gravel", 6, rng, size=128)
    spec = ALGORITHMS["patchcore"]
    coarse = engine.train("patchcore", spec.resolve([(411, "[4, 10]"), (429, "0.5")]), goods)
    assert coarse.info["position_aware"] is False
    assert coarse.detector.fine_bank_ is None and "fine_bank" not in coarse.info
    detector = PatchCoreDetector(spec.resolve([(411, "[0, 4, 10]"), (429, "0.5")]))
    detector.attach(engine.default_backbone())
    feats, fines = detector.embed_levels([goods[0].astype(np.float32) / 255.0])
    assert feats[0].shape[:2] == (32, 32)  # 128 px working image -> 256 px network input
    assert fines[0].shape[:2] == (64, 64)  # stride 4 (block 0's own grid is stride 2: 128²)


def test_the_fine_bank_has_a_row_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """However many cells the training images have (20 images of 640² give 25,600 fine-bank
    rows at the default ratio), the fine bank keeps at most ``FINE_BANK_ROWS``, and says so."""
    monkeypatch.setattr(patchcore, "FINE_BANK_ROWS", 300)
    goods = synthetic.good_images("gravel", 6, np.random.default_rng(15), size=128)
    model = engine.train("patchcore", ALGORITHMS["patchcore"].resolve([(429, "0.5"), (430, "0.05")]), goods)
    # uncapped: 6 images × 64² cells × 0.05 = 1229 rows
    assert model.detector.fine_bank_ is not None and model.detector.fine_bank_.shape == (300, 24)
    assert model.info["fine_bank"] == 300 and model.info["fine_bank_cap"] == 300


def test_predict_many_equals_predict_one_by_one_with_the_fine_level() -> None:
    """A batch of images of two sizes (two forward passes, each with its fine grid) scores
    every image as predicting it alone does."""
    rng = np.random.default_rng(16)
    goods = synthetic.good_images("gravel", 8, rng, size=128)
    model = engine.train("patchcore", ALGORITHMS["patchcore"].resolve([(429, "0.5")]), goods[:7])
    assert model.detector.fine_bank_ is not None
    bad = goods[7].copy()
    bad[40:60, 40:60] = 255 - bad[40:60, 40:60]
    other = synthetic.good_images("gravel", 1, rng, size=96)[0]
    batch = [bad, other, goods[7]]
    together = engine.predict_many(model, batch)
    for image, joint in zip(batch, together, strict=True):
        alone = engine.predict(model, image)
        assert abs(joint.score - alone.score) < 1e-5
        assert joint.good == alone.good and joint.boxes == alone.boxes
        np.testing.assert_allclose(joint.norm_map, alone.norm_map, atol=1e-5)
    assert together[1].norm_map.shape == (96, 96) and together[0].score > together[2].score


def test_aligned_products_do_not_use_the_fine_level() -> None:
    """With the default ``fine_weight`` > 0 an aligned product keeps no fine bank (the
    position-aware bank compares like with like), and a detector refit from a texture to an
    aligned product does not keep the texture's ``fine_bank`` in its description."""
    spec = ALGORITHMS["patchcore"]
    assert float(spec.resolve(None)["fine_weight"]) > 0
    parts = _parts(8, np.random.default_rng(17))
    model = engine.train("patchcore", spec.resolve(None), parts)
    assert model.info["position_aware"] is True
    assert model.detector.fine_bank_ is None and "fine_bank" not in model.info
    detector = PatchCoreDetector(spec.resolve(None))
    detector.attach(engine.default_backbone())
    detector.fit([g.astype(np.float32) / 255.0 for g in synthetic.good_images("gravel", 6, np.random.default_rng(18), size=96)])
    assert "fine_bank" in detector.info_
    detector.fit([p.astype(np.float32) / 255.0 for p in parts])
    assert detector.weight_ > 0 and detector.fine_bank_ is None and "fine_bank" not in detector.info_
