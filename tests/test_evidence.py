"""The evidence artefacts, the claims and the report page, built from the records of the smoke
batch (tests/conftest.py)."""

import json
import re
from html.parser import HTMLParser

import pandas as pd
import pytest
from conftest import EVIDENCE

from prunefuse.artefacts import ARTEFACTS
from prunefuse.claims import VERDICTS, numbers_in, verdict
from prunefuse.comparisons import authors_arm, kd_strength_arms, pf_arm
from prunefuse.config import ConfigError
from prunefuse.evidence import TTA_ARMS
from prunefuse.grid import plan
from prunefuse.reproduce import rebuild


def test_verdict_rule():
    assert verdict(0.1, 0.5) == VERDICTS[0] and verdict(-0.5, -0.1) == VERDICTS[1]
    assert verdict(-0.1, 0.5) == VERDICTS[2] and verdict(float("nan"), 1) == VERDICTS[2]
    assert verdict(0.5, 0.9, null=1.0, higher=False) == VERDICTS[0]
    assert verdict(-0.4, 0.2, null=-0.5) == VERDICTS[0]


def _tta_rows(fused_30: list[float], fused_20: list[float] = ()) -> pd.DataFrame:
    """Time-to-accuracy rows: dense AL at 60 epochs at 90%, fused + KD at 30 and 60 epochs
    (and at 20 where given), PruneFuse's selection from scratch at 60 epochs at 90.5%;
    whole-run MACs 14, 7, 12 and 5 (units of 10^12)."""
    from prunefuse.evidence import TTA_ARMS

    rows = [{"arm": TTA_ARMS[0], "target_epochs": 20, "seed": seed, "acc_pct": acc,
             "seconds": 40.0, "macs": 5e12} for seed, acc in enumerate(fused_20)]
    for seed, acc in enumerate(fused_30):
        rows += [{"arm": TTA_ARMS[2], "target_epochs": 60, "seed": seed, "acc_pct": 90.0,
                  "seconds": 100.0, "macs": 14e12},
                 {"arm": TTA_ARMS[0], "target_epochs": 30, "seed": seed, "acc_pct": acc,
                  "seconds": 60.0, "macs": 7e12},
                 {"arm": TTA_ARMS[0], "target_epochs": 60, "seed": seed, "acc_pct": acc,
                  "seconds": 110.0, "macs": 12e12},
                 {"arm": TTA_ARMS[1], "target_epochs": 60, "seed": seed, "acc_pct": 90.5,
                  "seconds": 90.0, "macs": 10e12}]
    return pd.DataFrame(rows).assign(selection_from=None)


@pytest.mark.parametrize("fused_30, fused_20, expected", [
    ([87.0], (), "undecided at this n"),  # one seed: no interval, so no verdict either way
    ([87.0, 89.6, 86.0], (), "undecided at this n"),  # the interval reaches -0.5 points
    ([87.0, 87.2, 86.9, 87.1], (), "not supported"),  # every seed 3 points short
    # 30 epochs clearly short, but 20 epochs' interval reaches the margin: not decided
    ([87.0, 87.2, 86.9, 87.1], (88.0, 91.5, 86.0, 89.0), "undecided at this n")])
def test_fusion_reach_verdict_follows_its_interval(monkeypatch, fused_30, fused_20, expected):
    """'Fusion shortens training' (a shorter schedule comes within 0.5 points) is not supported
    only when every shorter schedule's interval lies below -0.5 points, not by the means
    alone; the row states the paper's claim, and the means that fell short in its comparison."""
    import prunefuse.claims as claims
    import prunefuse.evidence as evidence

    monkeypatch.setattr(claims, "time_to_accuracy_rows",
                        lambda *a, **k: _tta_rows(fused_30, fused_20))
    monkeypatch.setattr(evidence, "_own_epochs", lambda df: 60)
    monkeypatch.setattr(claims, "_own_epochs", lambda df: 60)
    reach = [c for c in claims._time_to_accuracy_claims("r", "d", "a", "s", 0.5, 0.3)
             if c.id == "FusedReach"]
    assert len(reach) == 1 and reach[0].verdict == expected
    assert reach[0].claim.startswith("fusion with our KD shortens training: a schedule shorter "
                                     "than 60")  # it names the KD its arms were tested with
    assert "no shorter schedule's mean is within 0.5 points" in reach[0].comparison


@pytest.mark.parametrize("fused_30, row, comparison, ratio, expected", [
    # within 0.5 points at 30 epochs: the seconds to get there, 60 s against dense AL's 100
    ([89.8, 89.9, 89.7], "EqualAccuracySeconds", "PruneFuse at 30 epochs / dense AL at 60",
     0.6, "supported"),
    # every schedule 3 points short: no time at equal accuracy; the seconds at equal epochs,
    # judged as "no slower" (non-inferiority at 5%): 1.1 is beyond the margin
    ([87.0, 87.2, 86.9, 87.1], "WholeRunSeconds", "no schedule brings", 1.1, "not supported"),
    ([87.0], "WholeRunSeconds", "no schedule brings", 1.1, "undecided at this n")])  # n = 1
def test_whole_run_seconds_is_a_claim_whether_or_not_fusion_reaches(
        monkeypatch, fused_30, row, comparison, ratio, expected):
    """The whole run has a seconds row either way: PruneFuse's seconds to come within 0.5
    points of dense AL over dense AL's or, when no schedule comes that close, the seconds at
    equal epochs, judged by its own claim (no slower, margin 5%), not by the reach claim's."""
    import prunefuse.claims as claims
    import prunefuse.evidence as evidence

    monkeypatch.setattr(claims, "time_to_accuracy_rows", lambda *a, **k: _tta_rows(fused_30))
    monkeypatch.setattr(evidence, "_own_epochs", lambda df: 60)
    monkeypatch.setattr(claims, "_own_epochs", lambda df: 60)
    every = claims.decide(claims._time_to_accuracy_claims("r", "d", "a", "s", 0.5, 0.3))
    rows = [c for c in every if c.id == row]
    assert len(rows) == 1 and comparison in rows[0].comparison
    assert rows[0].mean == pytest.approx(ratio) and rows[0].verdict == expected
    # the same whole runs in MACs at equal epochs, and the selection alone, from scratch
    every = {c.id: c for c in every}
    decided = len(fused_30) > 1
    macs, alone = every["WholeRunMACs"], every["PFSelectionScratch"]
    assert macs.mean == pytest.approx(12 / 14) and macs.n == len(fused_30)
    assert alone.mean == pytest.approx(0.5) and alone.n == len(fused_30)
    assert {macs.verdict, alone.verdict} == {"supported" if decided else "undecided at this n"}


def test_claims_pair_each_comparison_once_per_seed(monkeypatch):
    """On the committed records plus made-up V2, fusion-reading and second-proxy rows, every
    claim pairs one run per seed and arm: the time-to-accuracy runs (fused + KD on the same
    selection, shorter schedules) and the reused-selection arms do not enter as extra rows."""
    from pathlib import Path

    import prunefuse.claims as claims
    from prunefuse.runs import results_table

    records = Path(__file__).resolve().parents[1] / "records" / "cpu"
    df = results_table(records)
    # the records' own V2 and fusion-reading runs give way to the made-up ones below
    df = df[(df["t_sync"] == 0) & (df["fusion"] == "indices")]
    main = df[claims._prunefuse(df) & (df["ratio"] == 0.5)]
    assert (df["target_epochs"] < 60).any()  # the records hold shorter schedules
    v2 = main.assign(t_sync=1, acc_pct=main["acc_pct"] + 1.0)
    fork = main.assign(fusion="fork", selection_from="x", acc_pct=main["acc_pct"] - 2.0)
    svp = df[df["selector"] == "svp"]
    other = svp.assign(proxy_arch="resnet20", acc_pct=svp["acc_pct"] + 0.5)
    more = pd.concat([df, v2, fork, other], ignore_index=True)
    monkeypatch.setattr(claims, "results_table", lambda records: more)
    rows = {c.id: c for c in claims.build_claims(records, dataset="fashion-mnist",
                                                 arch="resnet20", score="least_confidence",
                                                 ratio=0.5, budget=0.3)}
    n = main[main["budget"] == 0.3]["seed"].nunique()
    assert rows["VTwoSyncOne"].n == n and rows["VTwoSyncOne"].mean == pytest.approx(1.0)
    assert rows["FusionFork"].n == n and rows["FusionFork"].mean == pytest.approx(-2.0)
    assert {"SVPResnetEight", "SVPResnetTwenty"} <= set(rows)
    assert rows["MainPF"].n == n and len(set(rows)) == len(rows)


@pytest.mark.slow
def test_rebuild_from_records_builds_every_evidence_artefact_and_the_page(smoke_batch, tmp_path):
    root = smoke_batch / "evidence"
    before = sorted(p.relative_to(root) for p in (root / "runs").rglob("*"))
    result = rebuild("smoke", root / "runs", tmp_path / "out", artefacts=EVIDENCE,
                     log=lambda s: None)
    assert result["built"] == EVIDENCE and not result["missing"]
    assert sorted(p.relative_to(root) for p in (root / "runs").rglob("*")) == before  # read only
    figures = tmp_path / "out" / "figures"
    for name in EVIDENCE:
        art = ARTEFACTS[name]
        for ext in art.files:
            assert (figures / f"{art.stem}.{ext}").exists(), (name, ext)
        assert (figures / f"{art.stem}.caption.md").exists()
    tta = (figures / "time_to_accuracy.md").read_text()
    assert "first within 0.5" in tta and f"| {TTA_ARMS[0]} |" in tta and "MACs / dense AL's" in tta
    assert not re.search(r"\| (nan|\d+\.0) \|", tta)  # epochs and n as counts, no NaN
    kd = (figures / "kd_strength.md").read_text()
    none, authors, ours = (a.label for a in kd_strength_arms(0.5))  # the declared labels
    assert all(f"| {label} |" in kd for label in (none, authors, ours))
    claims = json.loads((figures / "claims.json").read_text())
    ids = {c["id"] for c in claims}
    assert {"MainPF", "PFRandom", "DenseRandom", "KDOurs", "KDAuthors", "AuthorsPF"} <= ids
    assert "| random |" in (figures / "main_comparison.md").read_text()  # score "random" kept
    # the KD claims pair the very runs of the KD table
    runs = pd.read_csv(figures / "kd_strength.csv").pivot_table(index="seed", columns="arm",
                                                                 values="acc_pct")
    for cid, arm in (("KDOurs", ours), ("KDAuthors", authors)):
        diff = (runs[arm] - runs[none]).dropna()
        claim = next(c for c in claims if c["id"] == cid)
        assert claim["n"] == len(diff) and claim["mean"] == pytest.approx(diff.mean()), cid
    # the readings claim pairs the very runs of the authors' reading table, final epoch
    ar = pd.read_csv(figures / "authors_reading.csv")
    ar = ar[ar["budget"] == 0.3].pivot_table(index="seed", columns="arm", values="final_pct")
    diff = (ar[authors_arm(0.5).label] - ar[pf_arm(0.5).label]).dropna()
    readings = next(c for c in claims if c["id"] == "ReadingsPF")
    assert readings["n"] == len(diff) > 0 and readings["mean"] == pytest.approx(diff.mean())
    strength = next(c for c in claims if c["id"] == "KDOursAuthors")  # ours against theirs
    diff = (runs[ours] - runs[authors]).dropna()
    assert strength["mean"] == pytest.approx(diff.mean()) and strength["n"] == len(diff)
    assert strength["verdict"] == verdict(strength["low"], strength["high"], higher=False)
    # smoke runs no schedule shorter than its own: no claim that fusion shortens training
    assert "FusedReach" not in ids
    # convergence: dense AL at twice smoke's 1 epoch, paired with the main runs, judged
    # against a 1-point gain (not against zero)
    conv = pd.read_csv(figures / "convergence.csv")
    assert sorted(conv["target_epochs"].unique()) == [1, 2]
    wide = conv.pivot_table(index="seed", columns="target_epochs", values="acc_pct")
    claim = next(c for c in claims if c["id"] == "ConvergedTwo")
    assert claim["mean"] == pytest.approx((wide[2] - wide[1]).mean())
    assert claim["verdict"] == verdict(claim["low"], claim["high"], null=1.0, higher=False)
    assert "| 2 epochs |" in (figures / "convergence.md").read_text()
    assert all(c["verdict"] in VERDICTS for c in claims)
    tex = (figures / "claims.tex").read_text()
    for c in claims:
        assert f"\\newcommand{{\\claim{c['id']}Mean}}" in tex
    # every number of the claims' table appears in its macros
    md = (figures / "claims.md").read_text()
    macros = set(re.findall(r"\}\{([^}]*)\}", tex))
    for c in claims:
        assert str(c["n"]) in macros

    # the page: one section per built artefact, each figure embedded, nothing fetched
    page = (tmp_path / "out" / "report.html").read_text()
    sections, imgs = [], []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "section":
                sections.append(a.get("data-artefact"))
            if tag == "img":
                imgs.append(a.get("src", ""))
            assert not (tag in ("script", "link") and (a.get("src") or a.get("href"))), tag

    Parser().feed(page)
    # the verdicts first (answer first), then one section per artefact; the provenance once
    assert sections == [None, *EVIDENCE] and page.index("Verdicts") < page.index("Contents")
    first = next(c for c in claims if c["family_verdict"])
    assert f"<strong>{first['family_verdict']}</strong>" in page
    assert page.count("- Hardware:") == 0 and page.count('class="prov"') == 1
    assert imgs and all(s.startswith("data:image/png;base64,") for s in imgs)
    assert "package commits" in page and "prunefuse reproduce" in page
    assert numbers_in(md) and numbers_in("−1.25 and +0.40") == {"-1.25", "0.40"}


@pytest.mark.slow
def test_rebuild_names_the_runs_an_artefact_lacks(smoke_batch, tmp_path):
    root, the_plan = smoke_batch / "evidence", plan("smoke", artefacts=EVIDENCE)
    only = tmp_path / "some"
    only.mkdir()
    keep = [r.run_id for r in the_plan.runs if "kd_strength" in r.artefacts]
    import shutil

    for rid in keep:
        shutil.copytree(root / "runs" / rid, only / rid)
    lines = []
    result = rebuild("smoke", only, tmp_path / "out", artefacts=["kd_strength",
                     "time_to_accuracy"], log=lines.append)
    assert result["built"] == ["kd_strength"]
    missing = result["missing"]["time_to_accuracy"]
    assert missing and all(m not in keep for m in missing)
    assert any("time_to_accuracy: not built" in line and missing[0] in line for line in lines)
    # --figures puts the artefacts elsewhere; never inside the records
    elsewhere = tmp_path / "committed"
    result = rebuild("smoke", only, tmp_path / "out2", figures=elsewhere,
                     artefacts=["kd_strength"], log=lambda s: None)
    assert result["figures"] == elsewhere and (elsewhere / "kd_strength.csv").exists()
    assert not (tmp_path / "out2" / "figures").exists()
    with pytest.raises(ConfigError, match="--figures .* inside --records"):
        rebuild("smoke", only, tmp_path / "out3", figures=only / "figures", log=lambda s: None)


@pytest.mark.slow
def test_kd_arms_take_one_run_per_seed_when_the_ablation_shares_the_folder(smoke_batch, tmp_path):
    """The ablation's fused target without KD (every budget) and the KD table's (the largest
    budget only) are both "no KD" on one selection; in one folder the KD arm's own run counts."""
    import shutil

    both = tmp_path / "runs"
    for folder in (smoke_batch / "runs", smoke_batch / "evidence" / "runs"):
        for run in folder.iterdir():
            if not (both / run.name).exists():
                shutil.copytree(run, both / run.name)
    result = rebuild("smoke", both, tmp_path / "out", artefacts=["kd_strength", "claims"],
                     log=lambda s: None)
    assert result["built"] == ["kd_strength", "claims"] and not result["missing"]
    kd = pd.read_csv(tmp_path / "out" / "figures" / "kd_strength.csv")
    assert not kd.duplicated(["seed", "arm"]).any() and kd_strength_arms(0.5)[0].label in set(kd["arm"])
    alone = rebuild("smoke", smoke_batch / "evidence" / "runs", tmp_path / "alone",
                    artefacts=["kd_strength"], log=lambda s: None)
    assert alone["built"] == ["kd_strength"]
    ref = pd.read_csv(tmp_path / "alone" / "figures" / "kd_strength.csv")
    assert sorted(kd["run_id"]) == sorted(ref["run_id"])  # the very runs of the KD table


def test_claims_count_crossed_pairs_by_the_blocks_machine_rule():
    from prunefuse.claims import _crossed
    from prunefuse.runs import machine_of

    def rec(seed, torch_version, cpu="AMD EPYC, AVX512, 2 cores"):
        return {"seed": seed, "machine": machine_of({"cpu": cpu, "threads": 1,
                                                     "torch_version": torch_version})}
    # same CPU and threads, another torch: another machine for the blocks, and here too
    cell = pd.DataFrame([rec(0, "2.14.1"), rec(0, "2.13.0"), rec(1, "2.14.1"), rec(1, "2.14.1")])
    assert _crossed(cell) == "1"
    assert _crossed(pd.DataFrame([rec(0, "2.14.1"), {"seed": 0, "machine": None}])) == "unknown"
