"""Reading the metric samples ``pitstop judge`` compares (docs/judge.md, "Sample files").

Two formats, told apart by the first character that is not white space (``{`` is JSON):

* CSV with the header ``metric,value``, one sample per row; an empty value or ``NaN`` is a
  missing sample.
* JSON: an object of metric name → list of numbers; ``null`` or ``NaN`` is a missing sample.

Every problem names the file, the line (CSV) or the field (JSON) and the fix (exit 2). A file is
read with the size cap of every input (MAX_FILE_BYTES); a metric holds at most
MAX_JUDGE_SAMPLES samples, a file at most MAX_JUDGE_METRICS metrics.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from pitstop.config import _read
from pitstop.errors import ConfigError, ConfigProblem
from pitstop.model.judge import metric_name_problem
from pitstop.model.limits import MAX_JUDGE_METRICS, MAX_JUDGE_SAMPLES, MAX_PROBLEMS

__all__ = ["Samples", "load_samples", "parse_samples"]

Samples = dict[str, list[float | None]]

_FIX_NUMBER = "write a number such as 0.125, or leave the value empty (or NaN) if it is missing."


def load_samples(path: str | Path, option: str) -> Samples:
    """The samples of the file at ``path`` (given to ``option``, named in problems)."""
    text = _read(Path(path), str(path), option)
    if isinstance(text, ConfigProblem):
        raise ConfigError([text])
    return parse_samples(text, str(path))


def parse_samples(text: str, file: str) -> Samples:
    text = text.removeprefix("\ufeff")
    if text.lstrip().startswith("{"):
        return _parse_json(text, file)
    return _parse_csv(text, file)


def _number(text: str) -> float | str | None:
    """The value of a CSV cell: a float, None (missing), or why it is not a number."""
    cell = text.strip()
    if not cell or cell.lower() == "nan":
        return None
    try:
        value = float(cell)
    except ValueError:
        shown = cell if len(cell) <= 40 else cell[:37] + "..."
        return f"{shown!r} is not a number."
    if math.isinf(value):
        return f"{cell!r} is infinite; the judge compares finite samples."
    return value


class _Collector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.samples: Samples = {}
        self.problems: list[ConfigProblem] = []

    def problem(self, line: int | None, field: str, message: str, fix: str) -> None:
        self.problems.append(ConfigProblem(self.file, line, field, message, fix))
        if len(self.problems) > MAX_PROBLEMS:
            raise ConfigError(self.problems)

    def add(self, metric: str, value: float | None, line: int | None, field: str) -> None:
        values = self.samples.get(metric)
        if values is None:
            if len(self.samples) >= MAX_JUDGE_METRICS:
                self.problem(line, field, f"more than {MAX_JUDGE_METRICS} metrics (the limit "
                             "MAX_JUDGE_METRICS).", "judge fewer metrics at once.")
                raise ConfigError(self.problems)
            values = self.samples[metric] = []
        if len(values) >= MAX_JUDGE_SAMPLES:
            self.problem(line, field, f"metric {metric!r} has more than {MAX_JUDGE_SAMPLES} "
                         "samples (the limit MAX_JUDGE_SAMPLES).",
                         "pass fewer samples (a coarser step, or a shorter window).")
            raise ConfigError(self.problems)
        values.append(value)

    def done(self) -> Samples:
        if self.problems:
            raise ConfigError(self.problems)
        return self.samples


def _parse_csv(text: str, file: str) -> Samples:
    out = _Collector(file)
    reader = csv.reader(text.splitlines())
    header_seen = False
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if not header_seen:
                header = [cell.strip().lower() for cell in row]
                if header != ["metric", "value"]:
                    shown = ",".join(row)[:60]
                    out.problem(line, "", f"the first line is {shown!r}, not the header "
                                "'metric,value'.", "start the file with the line "
                                "metric,value (or write JSON: {\"metric\": [values...]}).")
                    raise ConfigError(out.problems)
                header_seen = True
                continue
            if len(row) != 2:
                out.problem(line, "", f"{len(row)} fields; a row is metric,value.",
                            "write one metric name and one value per line.")
                continue
            metric = row[0].strip()
            bad = metric_name_problem(metric)
            if bad is not None:
                out.problem(line, "metric", bad + ".",
                            "write e.g. apiserver_request_p99_seconds.")
                continue
            value = _number(row[1])
            if isinstance(value, str):
                out.problem(line, "value", value, _FIX_NUMBER)
                continue
            out.add(metric, value, line, "value")
    except csv.Error as exc:
        out.problem(reader.line_num, "", f"not valid CSV: {exc}.",
                    "check the quoting on that line.")
    if not header_seen:
        out.problem(None, "", "the file is empty: no header 'metric,value'.",
                    "start the file with the line metric,value.")
    return out.done()


def _refuse_constant(name: str) -> float:
    if name == "NaN":
        return math.nan
    raise ValueError(f"{name} is not a sample the judge compares")


def _parse_json(text: str, file: str) -> Samples:
    out = _Collector(file)
    try:
        data: Any = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        out.problem(None, "", "the JSON nests too deep.", 'write {"metric": [values...]}.')
        raise ConfigError(out.problems) from None
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        message = getattr(exc, "msg", str(exc))
        out.problem(line, "", f"not valid JSON: {message}.",
                    "write an object of metric name → list of numbers, e.g. "
                    '{"latency_p99_seconds": [0.12, 0.13, null]}.')
        raise ConfigError(out.problems) from None
    if not isinstance(data, dict):
        out.problem(None, "", f"the JSON is a {type(data).__name__}, not an object.",
                    'write {"metric": [values...]}.')
        raise ConfigError(out.problems)
    if len(data) > MAX_JUDGE_METRICS:
        out.problem(None, "", f"{len(data)} metrics, more than {MAX_JUDGE_METRICS} (the limit "
                    "MAX_JUDGE_METRICS).", "judge fewer metrics at once.")
        raise ConfigError(out.problems)
    for metric, values in data.items():
        bad = metric_name_problem(metric)
        if bad is not None:
            out.problem(None, metric[:60], bad + ".", "write e.g. apiserver_request_p99_seconds.")
            continue
        if not isinstance(values, list):
            out.problem(None, metric, f"a {type(values).__name__}, not a list of samples.",
                        f'write "{metric}": [0.12, 0.13, ...].')
            continue
        out.samples.setdefault(metric, [])
        for i, v in enumerate(values):
            where = f"{metric}[{i}]"
            if v is None:
                out.add(metric, None, None, where)
            elif isinstance(v, bool) or not isinstance(v, int | float):
                shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
                out.problem(None, where, f"{shown} is not a number.",  # text, bool, list...
                            "write a number, or null if the sample is missing.")
            else:
                try:
                    value = float(v)
                except OverflowError:
                    value = math.inf
                if math.isinf(value):
                    out.problem(None, where, f"{v} is too large for a sample.",
                                "write a finite number.")
                    continue
                out.add(metric, None if math.isnan(value) else value, None, where)
    return out.done()
