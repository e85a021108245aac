"""The README and docs/*.md: their examples run, and what they name exists.

The README's Python example (a shipped model, scored on the shipped test
digits) and the library example of docs/library.md run as written and
print what they say. Every relative link of README.md and docs/*.md points
at a file of the repository (and at a heading there, for `#anchor`s);
every repository path named in their code is there; and every `--flag` in
their code is a flag of the binary its command runs (`python train.py
--...`, `python bench/....py --...`), or, in a span of flags alone, of one
of the binaries they run. The flags come from each binary's own help
(`--helpfull` for absl's, `--help` for argparse's), one process each.
"""

import functools
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

# End to end (binaries, subprocesses): not in the quick loop.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 300

# The repository's top-level directories: a path in code that starts with
# one of them names a file of the repository. Paths a run writes (runs/,
# a workdir's eval/, best/, pictures/ ..., $HOME, /tmp) start elsewhere.
REPOSITORY_DIRECTORIES = (
    ".ci",
    "bench",
    "configs",
    "docs",
    "draw_tf",
    "export",
    "serving",
    "tests",
    "third_party",
)
_PATH = re.compile(
    r"(?<![\w./~$-])((?:"
    + "|".join(re.escape(name) for name in REPOSITORY_DIRECTORIES)
    + r")/[\w./<>*-]*)"
)
_FENCE = re.compile(
    r"^(?P<fence>```|~~~)(?P<lang>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.DOTALL | re.MULTILINE,
)
_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SEPARATORS = {"&&", "||", ";", "|"}
_PYTHONS = {"python", "python3"}


def _relative(path):
    return str(path.relative_to(ROOT))


# --- Reading the pages -----------------------------------------------------


def _fenced_blocks(text):
    """[(language, body)] of the fenced code blocks."""
    return [
        (match["lang"].strip(), match["body"])
        for match in _FENCE.finditer(text)
    ]


def _inline_spans(text):
    """The inline code spans, outside fenced blocks, newlines as spaces."""
    prose = _FENCE.sub("", text)
    return [" ".join(match.group(2).split()) for match in _SPAN.finditer(prose)]


def _prose(text):
    """The text without its code (fenced blocks and inline spans)."""
    return _SPAN.sub("", _FENCE.sub("", text))


def _code(text):
    """Every piece of code of a page: block bodies and inline spans."""
    return [body for _, body in _fenced_blocks(text)] + _inline_spans(text)


def _shell_commands(text):
    """The commands of a page's code: token lists, one per command.

    A shell block gives one command per line (backslash continuations
    joined, comments dropped, `&&` / `;` / `|` chains split); an inline
    span gives one. Python blocks give none.
    """
    pieces = []
    for language, body in _fenced_blocks(text):
        if language in ("", "sh", "bash", "shell", "console"):
            pieces.extend(body.replace("\\\n", " ").splitlines())
    pieces.extend(_inline_spans(text))
    commands = []
    for piece in pieces:
        try:
            tokens = shlex.split(piece, comments=True)
        except ValueError:  # not shell: an unbalanced quote in prose code
            tokens = piece.split()
        command = []
        for token in tokens:
            if token in _SEPARATORS:
                commands.append(command)
                command = []
            else:
                command.append(token)
        commands.append(command)
    return [command for command in commands if command]


def _script_index(command):
    """The index of the `.py` a command runs with python, or None."""
    for index, token in enumerate(command):
        if token.startswith("-"):
            continue
        if token.endswith(".py"):
            return index
        if token in _PYTHONS or re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", token):
            continue  # python itself, or an environment assignment
        return None  # another program (pip, bazel, tensorflow_model_server)
    return None


def _flag_name(token):
    return token[2:].split("=", 1)[0]


# --- The binaries' flags ---------------------------------------------------


@functools.cache
def _flags_of(script):
    """The flags `python SCRIPT` accepts, read from its own help."""
    path = ROOT / script
    source = path.read_text()
    argparse_binary = "argparse" in source and "absl" not in source
    process = subprocess.run(
        [
            sys.executable,
            str(path),
            "--help" if argparse_binary else "--helpfull",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    names = set()
    if argparse_binary:
        options = process.stdout.partition("\noptions:\n")[2]
        for match in re.finditer(
            r"^\s+(?:-\w+(?: \w+)?, )?--([\w-]+)", options, re.MULTILINE
        ):
            names.add(match.group(1))
    else:
        for match in re.finditer(
            r"^\s+--(\[no\])?([\w.-]+):", process.stdout, re.MULTILINE
        ):
            names.add(match.group(2))
            if match.group(1):
                names.add("no" + match.group(2))
    assert names, (
        f"no flags read from `python {script} --help[full]` "
        f"(status {process.returncode}): {process.stderr[-2000:]}"
    )
    return frozenset(names)


def _flag_errors(text, where):
    """The flags of a page's code that no binary defines, as messages."""
    errors = []
    loose = []  # the flags of spans of flags alone, with no command
    scripts = set()
    for command in _shell_commands(text):
        index = _script_index(command)
        if index is None:
            if command[0].startswith("--"):
                loose.extend(
                    token for token in command if token.startswith("--")
                )
            continue
        script = command[index]
        flags = [token for token in command[index + 1 :] if token[:2] == "--"]
        run = index > 0 and command[index - 1] in _PYTHONS
        if not (ROOT / script).is_file():
            if run:
                errors.append(f"{where}: `python {script}`: no such file")
            continue
        if not (run or flags):
            continue  # a module named in prose: `draw_tf/training.py`
        if "__main__" not in (ROOT / script).read_text():
            errors.append(f"{where}: {script} is not a binary")
            continue
        scripts.add(script)
        known = _flags_of(script)
        errors.extend(
            f"{where}: {script} has no flag --{_flag_name(token)} "
            f"(in `{' '.join(command)}`)"
            for token in flags
            if _flag_name(token) not in known
        )
    # A span of flags alone names train.py's, or those of a binary the
    # page runs.
    binaries = sorted(scripts | {"train.py"})
    known_anywhere = set().union(*map(_flags_of, binaries))
    errors.extend(
        f"{where}: --{_flag_name(token)} is a flag of none of "
        f"{', '.join(binaries)}"
        for token in loose
        if _flag_name(token) not in known_anywhere
    )
    return errors


# --- Paths and links -------------------------------------------------------


def _path_errors(text, where):
    """Repository paths named in a page's code that are not there."""
    errors = []
    for code in _code(text):
        for match in _PATH.finditer(code):
            path = match.group(1).rstrip(".,;:")
            pattern = re.sub(r"<[^>/]*>", "*", path).rstrip("/")
            if "*" in pattern:
                found = any(ROOT.glob(pattern))
            else:
                found = (ROOT / pattern).exists()
            if not found:
                errors.append(f"{where}: `{path}` is not in the repository")
    return errors


def _slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path):
    headings = re.findall(
        r"^#+\s+(.*?)\s*#*$", _FENCE.sub("", path.read_text()), re.M
    )
    return {_slug(heading) for heading in headings}


def _link_errors(page):
    """Relative links of a page whose file (or heading) is not there."""
    errors = []
    for target in _LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z][\w+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        where = f"{_relative(page)}: link ({target})"
        if not linked.exists():
            errors.append(f"{where}: no such file")
        elif not linked.is_relative_to(ROOT):
            errors.append(f"{where}: outside the repository")
        elif (
            anchor and linked.suffix == ".md" and anchor not in _anchors(linked)
        ):
            errors.append(
                f"{where}: no heading #{anchor} in {_relative(linked)}"
            )
    return errors


# --- The tests -------------------------------------------------------------


def _python_block(path, heading):
    text = path.read_text()
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines; at most {MAX_README_LINES}: "
        "move details to a page under docs/"
    )


def test_readme_shipped_model_example_runs(capsys):
    code = _python_block(README, "## Shipped models")
    assert "mnist_sample" in code and "pretrained.load" in code
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "(16, 28, 28, 1)"
    match = re.fullmatch(r"-ELBO (\d+\.\d) nats per digit", printed[1])
    assert match, printed
    # The shipped model: 83.1 nats on the whole test set, 80.6 on the
    # 500 digits of the sample; a handful of digits varies by a few nats.
    assert 70 < float(match.group(1)) < 95
    assert len(printed) == 2


def test_library_example_runs(capsys):
    page = ROOT / "docs" / "library.md"
    code = _python_block(page, "## A training step in your own code")
    exec(compile(code, str(page), "exec"), {"__name__": "library_doc"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("-ELBO ")
    # One step from a near-blank canvas: about 784 log 2 = 543 nats.
    assert 400 < float(printed[0].split()[1]) < 800
    assert printed[1:] == ["(4, 28, 28, 1)", "(4, 64, 28, 28, 1)"]


@pytest.mark.parametrize("page", DOCS, ids=_relative)
def test_docs_page_has_a_title_and_says_what_it_holds(page):
    lines = page.read_text().splitlines()
    assert re.fullmatch(r"# \S.*", lines[0]), f"{_relative(page)}: no title"
    assert lines[1] == "" and lines[2].strip(), (
        f"{_relative(page)}: the title is not followed by a line saying "
        "what the page holds"
    )


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for target in _LINK.findall(_prose(README.read_text()))
    }
    assert [_relative(page) for page in DOCS if page not in linked] == []


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_relative_links_exist(page):
    assert _link_errors(page) == []


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_repository_paths_in_code_exist(page):
    assert _path_errors(page.read_text(), _relative(page)) == []


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_flags_in_code_are_flags_of_their_binary(page):
    assert _flag_errors(page.read_text(), _relative(page)) == []


def test_the_checks_catch_typos():
    """The checks above are not vacuous: a typo'd flag or path fails."""
    good = (
        "```sh\npython train.py --flagfile=configs/mnist_attention.flags \\\n"
        "    --nojit_compile --workdir=runs/x\n```\n"
        "`python export/export_saved_model.py --pretrained=mnist_attention`, "
        "`--num_epochs=3`, `runs/x/eval/test.json`, `draw_tf/pretrained_models"
        "/<name>/record.json`, `KERAS_BACKEND=jax python train.py --mode=draw`"
    )
    assert _flag_errors(good, "good") == []
    assert _path_errors(good, "good") == []
    for typo in [
        "`python train.py --num_epoch=3`",
        "```sh\npython train.py --mode=draw \\\n  --workdri=runs/x\n```",
        "`python export/export_saved_model.py --num_epochs=3`",
        "`--learning_rate_shedule=cosine`",
        "`python train2.py --mode=draw`",
        "`KERAS_BACKEND=jax python train.py --importance_sample=5`",
    ]:
        assert _flag_errors(typo, "typo"), typo
    for typo in [
        "`configs/mnist_atention.flags`",
        "`python train.py --flagfile=configs/mnist_smoke.flag`",
        "`docs/images/nothing.png`",
        "`draw_tf/pretrained_models/<name>/recrd.json`",
    ]:
        assert _path_errors(typo, "typo"), typo
    page = ROOT / "docs" / "training.md"
    assert _anchors(page) >= {"precision", "distribution"}
