"""``pitstop judge``: the canary judge (pitstop.gates.canary_judge) on samples given as files.

The files are read by :mod:`pitstop.config.samples` and :func:`pitstop.config.load_judge_config`;
this module turns the JudgeConfig into the judge's settings, checks that the samples name only
metrics the config knows, and writes the result: the ``-o json`` document (its contract:
docs/judge.md, "The -o json contract") or a table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pitstop.errors import ConfigError, ConfigProblem
from pitstop.gates.canary_judge import JudgeResult, JudgeSettings, judge_canary
from pitstop.gates.judging import FORMAT, judge_document
from pitstop.gates.judging import settings_for as judge_settings

if TYPE_CHECKING:
    from rich.console import Console

    from pitstop.model import JudgeConfig

__all__ = ["FORMAT", "judge_document", "print_judgement", "run_judge", "settings_for"]

def settings_for(config: JudgeConfig | None) -> JudgeSettings:
    return judge_settings(config.spec if config is not None else None)


def run_judge(canary_file: str, baseline_file: str, config_file: str | None) -> JudgeResult:
    from pitstop.config import load_judge_config
    from pitstop.config.samples import Samples, load_samples

    problems: list[ConfigProblem] = []
    config = None
    samples: dict[str, Samples] = {}
    for option, path in (("--canary", canary_file), ("--baseline", baseline_file)):
        try:
            samples[option] = load_samples(path, option)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if config_file is not None:
        try:
            config = load_judge_config(config_file)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    if config is not None and config.spec.metrics:
        for option, path in (("--canary", canary_file), ("--baseline", baseline_file)):
            for metric in samples[option]:
                if metric not in config.spec.metrics:
                    problems.append(ConfigProblem(
                        path, None, metric, f"the metric {metric!r} is not in {config_file}'s "
                        "spec.metrics.", f"add `{metric}:` under spec.metrics in {config_file}, "
                        "or remove its samples."))
        if problems:
            raise ConfigError(problems)
    return judge_canary(samples["--canary"], samples["--baseline"], settings_for(config))


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def print_judgement(console: Console, result: JudgeResult) -> None:
    from pitstop.render import print_table
    from pitstop.render.safe import visible

    rows = [[v.metric, str(v.canary_n), str(v.baseline_n), _g(v.u), _g(v.p), _g(v.effect),
             "-" if v.lower is None else f"{_g(v.lower)}..{_g(v.upper)}",
             str(v.classification)] for v in result.metrics]
    print_table(console, ["metric", "canaryN", "baselineN", "U", "p", "effect",
                          f"{result.settings.confidence * 100:g}% interval", "classification"],
                rows, no_wrap=["metric"])
    for v in result.metrics:
        console.out(visible(v.reason), highlight=False)
    console.out(visible(f"verdict {result.verdict} ({result.decision}): {result.reason}"),
                highlight=False)
