"""Privacy A/B: does this checkout's mask carry more identity than another checkout's?

    python benchmarks/privacy_ab.py --baseline /path/to/other/src [--faces ../shared/data/faces/lfw] [--json OUT]

Runs the re-identification benchmark (``digital-mask evaluate privacy``, anonymisers ``none`` and
``mask`` only) once with each tree's code, in a child process each, sharing the usual cache (so a
tree whose masks are cached costs seconds, a new one ~5-7 min on 2 cores). Then compares the two
masks on the same photos with a *paired* bootstrap over identities (the same resampled people for
both trees): the difference in pair AUC (verification ROC AUC over all photo pairs, chance 0.5)
mask-to-mask and mask-to-face, per recogniser, with its 95 % interval; and each tree's mask-to-mask
rank-1 hits, for reference only (a few near-ties that any sub-pixel change reshuffles).

Yardstick (docs/benchmarks.md, "Privacy"): an identity-neutral change, every iris shifted by a
constant 0.15 px, moves the mask-to-mask pair AUC by up to +0.008; a difference inside that, with an
interval that holds 0, is no evidence of more identity.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import digital_mask
from digital_mask import privacy

CHILD = r"""
import sys
from pathlib import Path

import numpy as np

from digital_mask import privacy as P

faces_dir, cache_dir, out = (Path(a) for a in sys.argv[1:4])
P.evaluate_privacy(faces_dir, anonymisers=("none", "mask"), cache_dir=cache_dir)
faces = P.load_face_set(faces_dir)
cache = P._Cache(cache_dir)
shas = [P._sha256(p) for p in faces.paths]
arrays = {f"{a}_{r}": np.stack([cache.load(s, a, r).descriptor for s in shas])
          for a in ("none", "mask") for r in P.RECOGNISER_NAMES}
np.savez(out, labels=faces.labels, is_gallery=faces.is_gallery, fingerprint=P.code_fingerprint("mask"), **arrays)
"""


def descriptors(src: Path, faces: Path, cache: Path, out: Path) -> dict[str, np.ndarray]:
    """Run the benchmark with the package under ``src``; its photos' descriptors."""
    env = dict(os.environ, PYTHONPATH=str(src))
    subprocess.run([sys.executable, "-c", CHILD, str(faces), str(cache), str(out)], env=env, check=True)
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="src folder of the other checkout")
    ap.add_argument("--faces", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "lfw")
    ap.add_argument("--cache", type=Path, default=privacy.default_cache_dir())
    ap.add_argument("--json", type=Path, help="write the comparison as JSON")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    this_src = Path(digital_mask.__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: descriptors(src.resolve(), args.faces, args.cache, Path(tmp) / f"{name}.npz")
                for name, src in (("this", this_src), ("baseline", args.baseline))}
    labels, gallery = runs["this"]["labels"], runs["this"]["is_gallery"]
    if not (np.array_equal(labels, runs["baseline"]["labels"]) and np.array_equal(gallery, runs["baseline"]["is_gallery"])):
        raise SystemExit("the two trees read different face sets")
    n_ids = int(labels.max()) + 1
    result: dict[str, object] = {"faces": args.faces.name, "n_identities": n_ids, "n_boot": privacy.PAIR_AUC_BOOT,
                                 "fingerprints": {k: str(v["fingerprint"]) for k, v in runs.items()}, "recognisers": {}}
    print(f"{args.faces.name}: {n_ids} identities, {len(labels)} photos; this ({result['fingerprints']['this']}) "
          f"vs baseline ({result['fingerprints']['baseline']})")
    for rec in privacy.RECOGNISER_NAMES:
        per: dict[str, object] = {}
        for scenario in ("mask2mask", "mask2face"):
            dist, auc = {}, {}
            for name, z in runs.items():
                mask, orig = z[f"mask_{rec}"], z[f"none_{rec}"]
                dist[name] = privacy.distance_matrix(mask, mask if scenario == "mask2mask" else orig)
                auc[name] = privacy.pair_auc(dist[name], labels)[0]
            diff, (lo, hi) = privacy.pair_auc_difference(dist["this"], dist["baseline"], labels, seed=args.seed)
            per[scenario] = {"pair_auc_this": round(auc["this"], 4), "pair_auc_baseline": round(auc["baseline"], 4),
                             "difference": round(diff, 4), "difference_ci95": [round(lo, 4), round(hi, 4)]}
            print(f"  {rec:8s} {scenario}: pair AUC {auc['this']:.4f} vs {auc['baseline']:.4f}, "
                  f"difference {diff:+.4f} [{lo:+.4f}, {hi:+.4f}]")
        hits = {}
        for name, z in runs.items():
            mask = z[f"mask_{rec}"]
            dist = privacy.distance_matrix(mask[~gallery], mask[gallery])
            hits[name] = round(privacy.rank_k_rate(dist, labels[~gallery], labels[gallery], 1) * int((~gallery).sum()), 2)
        per["mask2mask_rank1_hits"] = hits
        print(f"  {rec:8s} mask2mask rank-1 hits: {hits['this']:g} vs {hits['baseline']:g} of {int((~gallery).sum())}")
        result["recognisers"][rec] = per  # type: ignore[index]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
