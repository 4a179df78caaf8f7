"""Cross-validation: every fold × seed of a protocol, resumable, summarised.

`run_cross_validation(config)` is the whole of `python -m training.fit` as a
function (the benchmark harness calls it): it checks the output directory,
builds the strategy, loads the corpus and its cached features once, trains the
requested folds × seeds one after the other (finished runs, those with a
`metrics.json`, are read back instead of trained; an interrupted one resumes
from its last epoch) and writes `summary.json` / `summary.md`: mean ± std of
every metric over the runs and a per-run table.
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from sercal_keras import metrics as M
from sercal_keras.io_utils import write_json, write_text
from training.weight_averaging import describe_saved_model, describe_window
from training.run_dir import (
    CONFIG_NAME,
    is_finished,
    is_single_run,
    layout_is_flat,
    prepare_output_dir,
    read_json,
    run_name,
)

_DISTRIBUTION = None  # one strategy per process (MultiWorkerMirroredStrategy can be made once)

METRIC_KEYS = ("ua", "wa", "macro_f1")


def get_distribution():
    """The process' `Distribution` (created on first use)."""
    global _DISTRIBUTION
    if _DISTRIBUTION is None:
        from training.strategy import make_distribution

        _DISTRIBUTION = make_distribution()
    return _DISTRIBUTION


def _model_epochs(run: Dict[str, Any]) -> str:
    """`best epoch 14/30`, or `mean of the weights of epochs 11-30/30` for a weight-averaged run."""
    averaged = run.get("averaged_epochs")
    chosen = describe_window(averaged) if averaged else f"best epoch {run.get('best_epoch')}"
    return f"{chosen}/{run.get('epochs_run')}"


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"


def run_cross_validation(config, command: Optional[Sequence[str]] = None,
                         log: Optional[Callable[[str], None]] = None, grid: bool = False) -> Dict[str, Any]:
    """Trains every requested fold × seed of `config` and returns the summary dict.

    Args:
        config: a validated `TrainConfig`.
        command: the command line to record in the summary (default: sys.argv).
        log: progress printer (default: print to stdout unless `config.verbosity == 0`).
        grid: the output directory is a grid that grows run by run, perhaps from
            several processes with one fold × seed each (`benchmarks.accuracy`):
            every run goes to its `<fold>_seed<k>/`, even the first single one.

    Returns:
        The summary (also written as `summary.json` and `summary.md` in the output
        directory by the chief): `{"metrics": {"utterance": {"ua": {"mean", "std", "n"}, ...},
        "segment": {...}}, "runs": [...], "output_dir", ...}`.

    Raises:
        ConfigError: bad output directory, folds or protocol for this corpus.
        TrainingDivergedError: a run's loss became NaN.
    """
    from sercal_keras.provenance import git_commit
    from training.config import describe, explicit_output_dir
    from training.strategy import chief_decides
    from training.trainer import build_and_compile, load_data, select_folds, train_run

    commit = git_commit()  # the code this process loaded: the checkout may move on during a long grid
    config = dataclasses.replace(config).validate()  # a copy: the output dir gets filled in
    output_dir, named = explicit_output_dir(config)
    config.output_dir = str(output_dir)
    distribution = get_distribution()
    chief = distribution.is_chief
    if log is None:
        def log(message: str) -> None:
            if config.verbosity > 0 and chief:
                print(message, flush=True)
    quiet_log = log if config.verbosity > 0 else (lambda message: None)

    prepare_output_dir(config, output_dir, named, delete=False)
    data = load_data(config, log=quiet_log)
    chosen = select_folds(config, data.folds)  # every check before the output dir is touched
    if config.teachers:  # every fold has its teachers before anything is written (training.distillation)
        from training.distillation import teacher_runs, teachers_for_fold

        runs = teacher_runs(config.teachers)
        for _, fold in chosen:
            teachers_for_fold(runs, data.corpus.name, config.protocol_name, fold.name, fold.test_speakers,
                              data.labels, data.feature_config.to_dict(), config.feature_normalization)
    if config.model_options:  # a dry build: a bad --model-option fails here, not after the run dir is written
        build_and_compile(config, len(data.labels), None, None, data.feature_config.feature_shape, compile_model=False)
    flat = not grid and layout_is_flat(config, output_dir)
    if chief:
        prepare_output_dir(config, output_dir, named, delete=True)
        output_dir.mkdir(parents=True, exist_ok=True)
        if flat or not is_single_run(config):
            # A single fold × seed inside a cross-validation directory keeps the directory's
            # config: written here, it would make the next single-fold call train flat at the top.
            write_json(output_dir / CONFIG_NAME, config.to_dict())
        elif grid and not (output_dir / CONFIG_NAME).is_file():
            # a grid begun with one run: its config names every fold, so no later call lays it out flat
            write_json(output_dir / CONFIG_NAME, dataclasses.replace(config, folds=["all"]).to_dict())
    log(f"{describe(config)}; {distribution.describe()}, global batch "
        f"{distribution.global_batch(config.batch_size)}; output {output_dir}")
    data.extract(log=quiet_log)
    plan = [(i, fold, seed) for i, fold in chosen for seed in config.seeds]
    run_dirs = [output_dir if flat else output_dir / run_name(fold.name, seed) for _, fold, seed in plan]
    finished = chief_decides(distribution, [is_finished(d) for d in run_dirs])
    runs: List[Dict[str, Any]] = []
    trained_seconds: List[float] = []
    for n, ((fold_index, fold, seed), run_dir, done) in enumerate(zip(plan, run_dirs, finished), start=1):
        tag = f"[{n}/{len(plan)}] {fold.name} seed {seed}"
        if not done:  # another process growing the same grid may have finished it since this one started
            done = chief_decides(distribution, [is_finished(run_dir)])[0]
        if done:
            if not chief:
                continue
            result = read_json(run_dir / "metrics.json")
            result["skipped"] = True
            log(f"{tag}: finished before, skipped ({_line(result)})")
        else:
            log(f"{tag}: training")
            work_dir = None if chief else distribution.worker_dir(output_dir) / run_dir.relative_to(output_dir)
            result = train_run(config, data, fold_index, fold, seed, run_dir, distribution, log=quiet_log,
                               work_dir=work_dir)
            trained_seconds.append(result.get("wall_seconds", 0.0))
            remaining = sum(1 for d, f in zip(run_dirs[n:], finished[n:]) if not f)
            eta = f"; ETA {_format_seconds(np.mean(trained_seconds) * remaining)}" if remaining else ""
            log(f"{tag}: {_line(result)}, {_model_epochs(result)}, "
                f"{_format_seconds(result.get('wall_seconds', 0))}{eta}")
        result["run_dir"] = str(run_dir)
        runs.append(result)

    if not chief:  # workers other than the chief write nothing and report nothing
        shutil.rmtree(distribution.worker_dir(output_dir), ignore_errors=True)
        return {"output_dir": str(output_dir), "chief": False, "num_runs": len(runs)}
    summary = summarize(runs, config, command=command, commit=commit)
    summary["output_dir"] = str(output_dir)
    write_json(output_dir / "summary.json", summary)
    write_text(output_dir / "summary.md", summary_markdown(summary))
    return summary


def summary_line(summary: Dict[str, Any]) -> str:
    """One line: the number of runs and mean ± std of utterance UA, WA, macro-F1."""
    utt = summary["metrics"]["utterance"]
    return (f"{summary['num_runs']} run(s): UA {_pm(utt['ua'])}, WA {_pm(utt['wa'])}, "
            f"macro-F1 {_pm(utt['macro_f1'])} (utterances) -> {summary['output_dir']}")


def _line(result: Dict[str, Any]) -> str:
    utt = result["utterance"]
    return f"UA {utt['ua']:.1%}, WA {utt['wa']:.1%}, F1 {utt['macro_f1']:.1%}"


def _pm(stats: Dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "n/a"
    return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f} %"


def summarize(runs: Sequence[Dict[str, Any]], config, command: Optional[Sequence[str]] = None,
              commit: Optional[str] = None) -> Dict[str, Any]:
    """Mean ± std (sample std over runs) of every metric, per-class recall, a per-run table.

    `commit` is the git commit to record (default: the checkout's now).
    """
    from sercal_keras.provenance import git_commit, library_versions, machine_info

    labels = runs[0]["labels"] if runs else []
    levels = {}
    for level in ("utterance", "segment"):
        levels[level] = {key: M.mean_std([r[level][key] for r in runs]) for key in METRIC_KEYS}
    recall = {label: M.mean_std([r["utterance"]["per_class_recall"].get(label) for r in runs]) for label in labels}
    pooled = np.sum([np.asarray(r["utterance"]["confusion_matrix"]) for r in runs], axis=0) if runs else []
    table = []
    for r in runs:
        table.append({
            "fold": r["fold"], "seed": r["seed"],
            **{f"utterance_{k}": r["utterance"][k] for k in METRIC_KEYS},
            **{f"segment_{k}": r["segment"][k] for k in METRIC_KEYS},
            "best_epoch": r.get("best_epoch"), "epochs_run": r.get("epochs_run"),
            "averaged_epochs": r.get("averaged_epochs"),
            "test_utterances": r.get("num_test_utterances"), "test_speakers": r.get("test_speakers"),
            "validation_speakers": r.get("validation_speakers"), "run_dir": r.get("run_dir"),
        })
    speaker_independent = all(r.get("speaker_independent", True) for r in runs)
    return {
        "corpus": config.corpus,
        "protocol": config.protocol_name,
        "speaker_independent": speaker_independent,
        "variant": config.variant,
        "seeds": list(config.seeds),
        "num_runs": len(runs),
        "labels": labels,
        "std": "sample standard deviation over runs (ddof=1)",
        "metrics": levels,
        "per_class_recall": recall,
        "pooled_utterance_confusion_matrix": np.asarray(pooled).tolist(),
        "runs": table,
        "config": config.identity(),
        "command": " ".join(shlex.quote(a) for a in (command if command is not None else sys.argv)),
        "git_commit": commit if commit is not None else git_commit(),
        "machine": machine_info(),
        "versions": library_versions(),
    }


def summary_markdown(summary: Dict[str, Any]) -> str:
    """The summary as a Markdown report: headline, mean ± std table, per-run table."""
    def pct(value):
        return "–" if value is None else f"{100 * value:.1f}"

    def pm(stats):
        return "–" if stats["mean"] is None else f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}"

    cfg = summary["config"]
    dependent = "" if summary["speaker_independent"] else " — **speaker-dependent split (speakers overlap)**"
    lines = [
        f"# {summary['variant']} on {summary['corpus']}: {summary['protocol']} cross-validation{dependent}",
        "",
        f"{summary['num_runs']} run(s) (folds × seeds {summary['seeds']}); {cfg['epochs']} epochs max, "
        f"batch {cfg['batch_size']}/replica, Adam lr {cfg['learning_rate']:g} ({cfg['lr_schedule']}), "
        f"weight decay {cfg['weight_decay']:g}, dropout {cfg['dropout']:g}, validation fraction "
        f"{cfg['validation_fraction']:g} of the training speakers, model = "
        f"{describe_saved_model(cfg.get('average_from_epoch', 0), bool(cfg['validation_fraction']))}, "
        f"patience {cfg['patience'] or 'off'}.",
        "",
        f"Command: `{summary['command']}`",
        "",
        "## Mean ± std over runs (%)",
        "",
        "| level | UA | WA | macro-F1 |",
        "|---|---|---|---|",
    ]
    for level in ("utterance", "segment"):
        m = summary["metrics"][level]
        lines.append(f"| {level} | {pm(m['ua'])} | {pm(m['wa'])} | {pm(m['macro_f1'])} |")
    lines += ["", "Per-class recall (utterances): " + ", ".join(
        f"{label} {pm(stats)}" for label, stats in summary["per_class_recall"].items()), "",
        "## Per run (%)", "",
        "| fold | seed | test utt. | UA | WA | macro-F1 | seg. UA | seg. WA | model |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in summary["runs"]:
        lines.append(
            f"| {r['fold']} | {r['seed']} | {r['test_utterances']} | {pct(r['utterance_ua'])} | "
            f"{pct(r['utterance_wa'])} | {pct(r['utterance_macro_f1'])} | {pct(r['segment_ua'])} | "
            f"{pct(r['segment_wa'])} | {_model_epochs(r)} |"
        )
    versions = summary.get("versions", {})
    machine = summary.get("machine", {})
    lines += ["", f"Commit {summary.get('git_commit', 'unknown')}; {machine.get('cpu', '?')} "
              f"({machine.get('cpu_count', '?')} CPUs). Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
              ""]
    return "\n".join(lines)
