"""The quickstart notebook runs from top to bottom, so it cannot rot."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

from draw_tf import pretrained

# End to end (binaries, subprocesses): not in the quick loop.
pytestmark = pytest.mark.slow

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.skipif(
    "mnist_attention" not in pretrained.names(),
    reason="the notebook shows the shipped mnist_attention model",
)
def test_quickstart_notebook_executes():
    notebook = nbformat.read(DOCS / "quickstart.ipynb", as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(DOCS)}},
    )
    client.execute()
    outputs = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ]
    assert not [o for o in outputs if o.output_type == "error"]
    pictures = [o for o in outputs if "image/png" in o.get("data", {})] + [
        o for o in outputs if "image/gif" in o.get("data", {})
    ]
    # Samples, two strips and two animations.
    assert len(pictures) >= 5, [o.get("data", {}).keys() for o in outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "test -ELBO" in text and "importance-weighted (k = 20)" in text
