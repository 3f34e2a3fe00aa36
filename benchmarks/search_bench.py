"""Image search figures, each next to its baseline measured in the same run.

1. CIEDE2000: colour pairs per second, ours (vectorised numpy) vs skimage.color.deltaE_ciede2000,
   plus the largest difference between the two.
2. kNN: query latency and recall@10 of exact numpy search vs HNSW at 10k and 100k vectors.
3. Background removal: IoU against the known mask and time per image, GrabCut vs the
   border-colour baseline (and U²-Net when models/u2net.onnx exists).

Run: ``python benchmarks/search_bench.py`` (about 2–4 minutes on 2 cores).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from percept.search.background import U2NetMasker, border_mask, grabcut_mask, iou  # noqa: E402
from percept.search.colour import ciede2000  # noqa: E402
from percept.search.vectors import BruteForceIndex, HnswIndex  # noqa: E402
from tests.unit.search.synthetic import composite, textured_composite  # noqa: E402


def best_of(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_ciede2000(n: int = 1_000_000) -> None:
    from skimage.color import deltaE_ciede2000

    rng = np.random.default_rng(0)

    def lab(m: int) -> np.ndarray:
        return np.column_stack([rng.uniform(0, 100, m), rng.uniform(-110, 110, m), rng.uniform(-110, 110, m)])

    a, b = lab(n), lab(n)
    ours = best_of(lambda: ciede2000(a, b))
    theirs = best_of(lambda: deltaE_ciede2000(a, b))
    diff = float(np.abs(ciede2000(a, b) - deltaE_ciede2000(a, b)).max())
    print(f"CIEDE2000 ({n:,} pairs, best of 3)")
    print(f"  ours (percept.search.colour.ciede2000): {n / ours / 1e6:7.2f} M pairs/s  ({ours * 1e3:.0f} ms)")
    print(f"  skimage.color.deltaE_ciede2000:       {n / theirs / 1e6:7.2f} M pairs/s  ({theirs * 1e3:.0f} ms)")
    print(f"  speed-up x{theirs / ours:.2f}; max |ours - skimage| = {diff:.2e}")


def embedding_like(n: int, dim: int, seed: int, latent: int = 24) -> np.ndarray:
    """Vectors with low intrinsic dimension, like image embeddings (a random map of a 24-d
    latent, ReLU'd, plus a little noise); pure Gaussian noise would be a worst case no ANN fits."""
    basis = np.random.default_rng(12345).normal(size=(latent, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, latent)).astype(np.float32)
    return np.maximum(z @ basis, 0) + 0.05 * rng.normal(size=(n, dim)).astype(np.float32)


def bench_knn(n: int, dim: int, queries: int = 200, k: int = 10) -> None:
    data = embedding_like(n, dim, 1)
    q = embedding_like(queries, dim, 2)
    ids = [str(i) for i in range(n)]
    exact = BruteForceIndex(dim)
    exact.add(ids, data)
    start = time.perf_counter()
    hnsw = HnswIndex(dim, capacity=n, ef_construction=100, ef=128)
    hnsw.add(ids, data)
    build = time.perf_counter() - start
    truth = exact.search(q, k)
    single_exact = best_of(lambda: [exact.search(q[i : i + 1], k) for i in range(20)], 2) / 20
    single_hnsw = best_of(lambda: [hnsw.search(q[i : i + 1], k) for i in range(20)], 2) / 20
    got = hnsw.search(q, k)
    recall = np.mean([len({h[0] for h in a} & {h[0] for h in b}) / k for a, b in zip(got, truth, strict=True)])
    print(f"kNN top-{k}, {n:,} vectors x {dim}-d (embedding-like), {queries} queries")
    print(f"  exact numpy (baseline): {single_exact * 1e3:8.2f} ms/query  recall 1.000")
    print(f"  HNSW (M=16, ef=128):    {single_hnsw * 1e3:8.2f} ms/query  recall {recall:.3f}  (build {build:.1f} s)")


def bench_background(models: Path) -> None:
    cases = [composite(shape, fg, bg, seed=i)
             for i, (shape, fg, bg) in enumerate([("ellipse", (220, 40, 40), (235, 235, 225)),
                                                  ("rectangle", (40, 120, 200), (60, 160, 70)),
                                                  ("triangle", (240, 200, 30), (90, 90, 90))])]
    cases += [textured_composite(seed) for seed in range(9)]
    methods: dict[str, Callable[..., np.ndarray]] = {"grabcut (default)": grabcut_mask,
                                                     "border colour (baseline)": border_mask}
    if (models / "u2net.onnx").is_file():
        methods["u2net"] = U2NetMasker(models)
    print(f"Background removal, {len(cases)} synthetic composites (3 plain, 9 photo patches on textures)")
    for name, fn in methods.items():
        scores, times = [], []
        for image, truth in cases:
            start = time.perf_counter()
            mask = fn(image)
            times.append(time.perf_counter() - start)
            scores.append(iou(mask, truth))
        print(f"  {name:26s} mean IoU {np.mean(scores):.3f}  min {np.min(scores):.3f}  "
              f"{np.mean(times) * 1e3:6.0f} ms/image")
    if "u2net" not in methods:
        print("  u2net: skipped (no models/u2net.onnx)")


if __name__ == "__main__":
    bench_ciede2000()
    bench_knn(10_000, 512)
    bench_knn(100_000, 256)
    bench_background(Path(os.environ.get("PERCEPT_MODELS_PATH", "models")))
