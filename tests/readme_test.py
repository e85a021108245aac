"""The README's library example runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_library_usage_example_runs(capsys):
    text = README.read_text()
    section = text[text.index("## Library usage") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("-ELBO ")
    # One step from a near-blank canvas: about 784 log 2 = 543 nats.
    assert 400 < float(printed[0].split()[1]) < 800
    assert printed[1:] == ["(4, 28, 28, 1)", "(4, 64, 28, 28, 1)"]
