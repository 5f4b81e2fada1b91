"""The ``detectors:`` section of the config file, as a user tunes detection with it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson
import pytest

from tests.test_cli import run_cli


def replay(data_dir: Path, tmp_path: Path, name: str, *extra: str, env: dict[str, str] | None = None) -> tuple[
        list[dict], list[dict]]:
    scores, alerts = tmp_path / f"{name}-scores.jsonl", tmp_path / f"{name}-alerts.jsonl"
    res = run_cli("replay", str(data_dir / "attacks-dev.jsonl.gz"), "--scores", str(scores), "--alerts", str(alerts),
                  "--no-progress", *extra, env=env)
    assert res.returncode == 0, res.stderr
    return ([orjson.loads(x) for x in scores.read_bytes().splitlines()],
            [orjson.loads(x) for x in alerts.read_bytes().splitlines()])


def test_turning_detectors_and_a_rule_off_and_lowering_the_threshold(data_dir: Path, tmp_path: Path) -> None:
    base_scores, base_alerts = replay(data_dir, tmp_path, "default")
    assert any("hst" in s["detectors"] for s in base_scores)
    assert any(a["detector"] == "rules/flash-loan-manipulation" for a in base_alerts)
    mine = tmp_path / "my-rules.yaml"  # a rule of the team's own, beside the built-in ones
    mine.write_text("version: 1\nrules:\n  - name: many-creations\n    when: {creates: '>= 3'}\n"
                    "    severity: critical\n    type: suspicious\n    title: Many contracts created at once\n"
                    "    min_score: 0.0\n")
    config = tmp_path / "chainsentry.yaml"
    config.write_text(f"""
detectors:
  threshold: 0.6
  hst: {{enabled: false}}
  pyod: {{enabled: false}}
  baseline: {{enabled: false}}
  rule_files: [{mine}]
  rules:
    flash-loan-manipulation: {{enabled: false}}
    overflow-bait: {{severity: critical}}
""")
    scores, alerts = replay(data_dir, tmp_path, "tuned", "--config", str(config))
    assert all(set(s["detectors"]) == {"shape"} for s in scores), "the models off: the rule evidence alone"
    assert not any(a["detector"] == "rules/flash-loan-manipulation" for a in alerts)
    assert any(a["detector"] == "rules/many-creations" and a["severity"] == "critical" for a in alerts)
    bait = [a for a in alerts if a["detector"] == "rules/overflow-bait"]
    assert bait and all(a["severity"] == "critical" for a in bait)
    anomalies = [a for a in alerts if a["detector"] == "fusion"]
    assert anomalies and min(a["score"] for a in anomalies) >= 0.6
    assert any(a["score"] < 0.78 for a in anomalies), "the lowered threshold lets lower scores alert"
    # the environment variable form says the same
    env_scores, _ = replay(data_dir, tmp_path, "env", env={
        **os.environ, "CHAINSENTRY_DETECTORS__HST__ENABLED": "false",
        "CHAINSENTRY_DETECTORS__PYOD__ENABLED": "false", "CHAINSENTRY_DETECTORS__BASELINE__ENABLED": "false"})
    assert all(set(s["detectors"]) == {"shape"} for s in env_scores)


@pytest.mark.parametrize(("text", "message"), [
    ("detectors:\n  pyodd: {enabled: false}\n", "unknown key 'detectors.pyodd' (did you mean 'pyod'?)"),
    ("detectors:\n  hst: {trees: 0}\n", "detectors.hst.trees: Input should be greater than or equal to 1"),
    ("detectors:\n  rules:\n    unpaid-pul: {enabled: false}\n",
     "unknown rule 'unpaid-pul' in the detectors configuration (did you mean 'unpaid-pull'?)"),
    ("detectors:\n  rules:\n    unpaid-pull: {severity: huge}\n", "detectors.rules.unpaid-pull.severity"),
    ("detectors:\n  rule_files: [/nonexistent/rules.yaml]\n", "cannot read rule file /nonexistent/rules.yaml"),
])
def test_a_mistake_in_the_detectors_section_is_one_line(data_dir: Path, tmp_path: Path, text: str,
                                                        message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    res = run_cli("replay", str(data_dir / "attacks-dev.jsonl.gz"), "--config", str(config), "--no-progress")
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_a_snapshot_is_refused_under_other_detector_settings(data_dir: Path, tmp_path: Path) -> None:
    snap = tmp_path / "s.bin"
    replay(data_dir, tmp_path, "first", "--snapshot-out", str(snap))
    config = tmp_path / "c.yaml"
    config.write_text("detectors:\n  threshold: 0.7\n")
    res = run_cli("replay", str(data_dir / "attacks-dev.jsonl.gz"), "--config", str(config), "--snapshot-in",
                  str(snap), "--no-progress")
    assert res.returncode == 2
    assert "another detector configuration (alert_threshold: 0.78 there, 0.7 here)" in res.stderr


def test_ablation_shows_what_each_detector_adds(data_dir: Path, tmp_path: Path) -> None:
    res = run_cli("evaluate", "--ablate", str(data_dir / "attacks-dev.jsonl.gz"), "--labels",
                  str(data_dir / "attacks-dev.labels.csv"))
    assert res.returncode == 0, res.stderr
    runs = {r["without"]: r for r in orjson.loads(res.stdout)["runs"]}
    assert set(runs) == {None, "shape", "hst", "pyod", "baseline"}
    assert runs[None]["average_precision"] >= 0.87  # the configured run: the replay's own numbers
    assert runs["shape"]["average_precision"] < 0.5 < runs["hst"]["average_precision"]  # the rules carry it
    assert runs["hst"]["alerts"]["recall"] < runs[None]["alerts"]["recall"], "hst adds alerts on dev"
    assert "without shape" in res.stderr and "average_precision" in res.stderr  # the table, side by side


def test_warmed_on_history_the_learned_detectors_carry_more(data_dir: Path) -> None:
    """``--warm``: every run's engine learns from history first, as a service started from a
    snapshot has. Warmed on the traced file itself (its call trees known), the learned detectors
    alone rank the exploits far better than cold, and hst adds more to the whole."""
    attacks, labels = str(data_dir / "attacks-dev.jsonl.gz"), str(data_dir / "attacks-dev.labels.csv")
    cold = run_cli("evaluate", "--ablate", attacks, "--labels", labels)
    warm = run_cli("evaluate", "--ablate", attacks, "--labels", labels, "--warm", attacks)
    assert cold.returncode == 0 and warm.returncode == 0, cold.stderr + warm.stderr
    before = {r["without"]: r for r in orjson.loads(cold.stdout)["runs"]}
    after = {r["without"]: r for r in orjson.loads(warm.stdout)["runs"]}
    assert orjson.loads(warm.stdout)["warm"] == [attacks]
    assert after["shape"]["roc_auc"] > before["shape"]["roc_auc"] + 0.1, "learned-only, warm vs cold"
    gain = {name: runs[None]["roc_auc"] - runs["hst"]["roc_auc"] for name, runs in (("cold", before), ("warm", after))}
    assert gain["warm"] > gain["cold"] > 0, gain
    res = run_cli("evaluate", "--scores", attacks, "--labels", labels, "--warm", attacks)
    assert res.returncode == 2 and "--warm goes with --ablate" in res.stderr


def test_ablation_on_a_long_stream_shows_what_pyod_adds(data_dir: Path, tmp_path: Path) -> None:
    """attacks-dev is too short for the pyod window to fit; ten times over, it fits and refits."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from long_stream import write_long_stream

    long = write_long_stream(data_dir / "attacks-dev.jsonl.gz", 10, tmp_path / "long.jsonl.gz",
                             data_dir / "attacks-dev.labels.csv")
    res = run_cli("evaluate", "--ablate", str(long), "--labels", str(tmp_path / "long.labels.csv"), timeout=300)
    assert res.returncode == 0, res.stderr
    runs = {r["without"]: r for r in orjson.loads(res.stdout)["runs"]}
    assert runs[None]["roc_auc"] > runs["pyod"]["roc_auc"]
    assert runs[None]["alerts"]["recall"] > runs["pyod"]["alerts"]["recall"]
    assert runs[None]["alerts"]["false_alerts_per_1000"] <= runs["pyod"]["alerts"]["false_alerts_per_1000"]


def test_the_environment_form_turns_a_dashed_rule_off() -> None:
    from chainsentry.config import load_settings
    from detectors.engine import engine_rules

    settings = load_settings(environ={"CHAINSENTRY_DETECTORS__RULES__UNPAID_PULL__ENABLED": "false",
                                      "CHAINSENTRY_DETECTORS__RULES__FORGED_CALLBACK__SEVERITY": "critical"})
    rules = {r.name: r for r in engine_rules(settings.detectors.engine_config()).rules}
    assert "unpaid-pull" not in rules and rules["forged-callback"].severity == "critical"
    assert "reentrancy-drain" in rules
