"""The robustness study: outcomes read from each run's log, the report's tables built from them."""
import json

import pytest

from evaluation.robustness import load_study, parse_run_name, run_outcome
from utils.errors import UserError


def _log(run, *rows):
    (run / "logs").mkdir(parents=True)
    (run / "logs" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_outcomes_come_from_the_run_s_own_log(tmp_path):
    _log(tmp_path / "ok", {"step": 5, "d_loss": 1.0})
    _log(tmp_path / "dead", {"step": 5, "d_loss": 1.0}, {"step": 40, "event": "collapse", "message": "D wins"},
         {"step": 45, "d_loss": 0.1})
    _log(tmp_path / "gone", {"step": 5}, {"step": 60, "event": "collapse", "message": "m"},
         {"step": 70, "event": "diverged", "message": "g_loss nan"})
    assert run_outcome(tmp_path / "ok") == ("trained", None, "")
    assert run_outcome(tmp_path / "dead") == ("collapsed", 40, "D wins")
    assert run_outcome(tmp_path / "gone") == ("diverged", 70, "g_loss nan")   # it ended the run


def test_run_names_give_setting_recipe_and_seed():
    assert parse_run_name("H__recommended_s2") == ("H", "recommended", 2)
    assert parse_run_name("lr_high__snD_noD_s10") == ("lr_high", "snD_noD", 10)
    assert parse_run_name("my_run") == ("-", "my_run", 0)   # a user's own sweep: each run its own recipe


def test_a_study_folder_lists_its_runs_and_what_it_describes(tmp_path):
    for name in ("A__plain_s1", "A__snD_s1", "B__plain_s1"):
        _log(tmp_path / "runs" / name, {"step": 1})
    (tmp_path / "study.json").write_text(json.dumps({"settings": {"A": "", "B": "--lr 0.004"},
                                                     "recipes": {"plain": "", "snD": "--sn-discriminator"}}))
    study = load_study(tmp_path)
    assert [r.name for r in study.runs] == ["A__plain_s1", "A__snD_s1", "B__plain_s1"]
    assert study.baseline == "plain" and study.setting_names == ["A", "B"] and study.recipe_names == ["plain", "snD"]
    assert not any(r.has_checkpoint for r in study.runs)
    with pytest.raises(UserError, match="holds no runs"):
        load_study(tmp_path / "runs" / "A__plain_s1" / "logs")


@pytest.mark.slow
def test_a_tiny_study_reports_what_its_runs_logged(tmp_path, run_script):
    """2 settings x 2 recipes x 1 seed at 32 px: the report's tables against the runs' own logs."""
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"A": "", "X": "--lr 1000"}))   # X: a rate no GAN survives
    out = tmp_path / "study"
    run_script("scripts/robustness_study.py", "--out", out, "--settings_file", settings, "--recipes", "plain,snD",
               "--seeds", 1, "--steps", 20, "--width", 8, "--chars", 60)
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    study = metrics["study"]
    from_logs = {}
    for run in sorted((out / "runs").iterdir()):
        events = [json.loads(line) for line in (run / "logs" / "train.jsonl").read_text().splitlines()]
        kinds = [e["event"] for e in events if "event" in e]
        from_logs[run.name] = "diverged" if "diverged" in kinds else "collapsed" if "collapse" in kinds else "trained"
    assert sorted(from_logs) == ["A__plain_s1", "A__snD_s1", "X__plain_s1", "X__snD_s1"]
    assert from_logs["X__plain_s1"] == from_logs["X__snD_s1"] == "diverged"
    assert {r["run"]: r["outcome"] for r in study["runs"]} == from_logs
    evaluated = {r["name"]: r["summary"]["overall"] for r in metrics["runs"]}
    assert sorted(evaluated) == ["A__plain_s1", "A__snD_s1"]   # the diverged runs saved no checkpoint
    for row in study["per_recipe"]:
        runs = [name for name in from_logs if name.split("__")[1] == f"{row['recipe']}_s1"]
        for outcome in ("trained", "collapsed", "diverged"):
            assert row[outcome] == sum(from_logs[name] == outcome for name in runs)
        assert row["median_ssim"] == pytest.approx(evaluated[f"A__{row['recipe']}_s1"]["ssim"])
    difference = next(d for d in study["differences"] if d["setting"] == "A" and d["recipe"] == "snD")
    assert difference["mean"] == pytest.approx(evaluated["A__snD_s1"]["ssim"] - evaluated["A__plain_s1"]["ssim"],
                                               abs=1e-6)
    report = (out / "report" / "report.md").read_text()
    plain = next(r for r in study["per_recipe"] if r["recipe"] == "plain")
    assert f"| plain | 2 | {plain['trained']} | {plain['collapsed']} | {plain['diverged']} |" in report
    assert "| X__plain_s1 | diverged |" in report and "robustness_ssim.png" in report
    assert (out / "report" / "robustness_ssim.png").stat().st_size > 0
