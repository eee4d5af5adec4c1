"""The README's five-minute tour, run as written: every ``<!-- tour: run -->`` block goes through
bash in order (one shell, so ``RUN=…`` carries over), with ``/tmp/`` moved into a temporary
directory. Each ``<!-- tour: prints -->`` block after it lists lines that the commands since
the previous such block must print (whitespace runs compare equal, ``…`` stands for anything),
and each command whose comment ends with ``(exit N)`` must exit with N.

So whoever changes what pitstop prints in the tour changes the README with it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- tour: (run|prints) -->\n```[a-z]*\n(.*?)```", re.S)
EXIT = re.compile(r"\s#[^#]*\(exit (\d+)\)\s*$")


@dataclass
class Step:
    commands: list[str] = field(default_factory=list)  # the run blocks, as written
    prints: list[str] = field(default_factory=list)  # the lines they must print


def tour() -> list[Step]:
    text = README.read_text(encoding="utf-8")
    start = text.index("## A five-minute tour")
    section = text[start:text.index("\n## ", start + 1)]
    steps = [Step()]
    for kind, body in BLOCK.findall(section):
        if kind == "run":
            if steps[-1].prints:
                steps.append(Step())
            steps[-1].commands.append(body)
        else:
            steps[-1].prints += [ln for ln in body.splitlines() if ln.strip()]
    return steps


def _script(steps: list[Step], tmp: Path) -> str:
    """One bash script: each step's blocks, then a marker; each `(exit N)` command followed by
    a record of what it exited with."""
    out = ["exec 2>&1"]
    for i, step in enumerate(steps):
        for block in step.commands:
            for line in block.replace("/tmp/", f"{tmp}/").splitlines():
                if line.startswith(". .venv/bin/activate"):
                    continue  # the test's own environment has pitstop on PATH
                m = EXIT.search(line)
                if m:
                    cmd = line[:m.start()].rstrip()
                    out.append(f"{cmd}; echo \"@@exit $? want {m.group(1)}: "
                               f"{cmd.strip()[:60].replace('$', '')}\"")
                else:
                    out.append(line)
        out.append(f"echo '@@step {i} done'")
    return "\n".join(out) + "\n"


def _pattern(line: str) -> re.Pattern[str]:
    parts = [re.escape(" ".join(p.split())) for p in line.split("…")]
    return re.compile(".*?".join(parts))


def test_readme_tour_prints_what_the_readme_says(tmp_path: Path) -> None:
    steps = tour()
    assert len(steps) >= 5 and all(s.commands and s.prints for s in steps), steps
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
           f"{os.environ.get('PATH', '')}", "PITSTOP_DEBUG": "", "COLUMNS": "200"}
    r = subprocess.run(["bash", "-c", _script(steps, tmp_path)], capture_output=True,
                       text=True, timeout=900, cwd=ROOT, env=env, check=False)
    output = r.stdout.replace(str(tmp_path), "/tmp")
    chunks = re.split(r"^@@step \d+ done$", output, flags=re.M)
    assert len(chunks) == len(steps) + 1, output[-3000:]
    exits = re.findall(r"^@@exit (\d+) want (\d+): (.*)$", output, re.M)
    assert len(exits) >= 10, output[-3000:]
    for got, want, cmd in exits:
        assert got == want, f"{cmd}: exit {got}, the README says {want}\n{output[-4000:]}"
    for step, chunk in zip(steps, chunks, strict=False):
        lines = [" ".join(ln.split()) for ln in chunk.splitlines()]
        for expected in step.prints:
            pattern = _pattern(expected)
            assert any(pattern.search(ln) for ln in lines), (
                f"the README says the tour prints\n  {expected}\nbut it printed:\n"
                + "\n".join(lines[:80]))
    assert "Traceback" not in output and "internal error" not in output
