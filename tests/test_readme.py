"""The README's Python examples run as written (in a temporary working directory)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks()
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert (tmp_path / "params.pt").exists() and (tmp_path / "svi.pt").exists()
    median_w = namespace["guide"].median(namespace["x"], namespace["y"])["w"]
    assert (median_w - namespace["torch"].tensor([1.0, -2.0, 0.5])).abs().max() < 0.2
