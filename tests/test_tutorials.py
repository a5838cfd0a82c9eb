"""The tutorials: each notebook executes top to bottom in a fresh kernel on this interpreter and shows
its plots; the committed notebooks carry no outputs."""
import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
#: notebook -> inline PNG outputs it must show (a plot drawn after a library switched pyplot to
#: the file backend Agg would silently go missing)
PLOTS = {"01_train_and_export": 2, "02_run_on_lava": 2, "03_event_streams": 4, "04_energy_and_loihi": 4,
         "05_deploy_on_loihi_processes": 2}
KERNEL = "lava-spikeformer-tests"
CELL_TIMEOUT_S = 600        # idle, the longest cell takes seconds; CI machines are shared


@pytest.fixture
def this_interpreter(tmp_path_factory, monkeypatch) -> str:
    """The name of a kernelspec for this interpreter, put first on ``JUPYTER_PATH``: whatever
    ``python3`` the user's Jupyter knows may be another Python without lava."""
    root = tmp_path_factory.mktemp("jupyter")
    (root / "kernels" / KERNEL).mkdir(parents=True)
    (root / "kernels" / KERNEL / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lava-spikeformer tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    return KERNEL


def test_the_tutorials_are_the_five_notebooks():
    assert sorted(p.stem for p in TUTORIALS.glob("*.ipynb")) == sorted(PLOTS)


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_committed_notebook_has_no_outputs(name):
    nb = nbformat.read(TUTORIALS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    assert len(code) >= 5
    dirty = [i for i in code if nb.cells[i].outputs or nb.cells[i].execution_count is not None]
    assert dirty == [], f"{name}.ipynb: cells {dirty} carry outputs or execution counts; store it stripped"


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_tutorial_executes_and_shows_its_plots(name, this_interpreter, tmp_path):
    """Runs a copy in ``tmp_path`` (the notebooks write under ``runs/`` of their working folder)."""
    shutil.copy(TUTORIALS / f"{name}.ipynb", tmp_path)
    nb = nbformat.read(tmp_path / f"{name}.ipynb", as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    client = NotebookClient(nb, kernel_name=this_interpreter, timeout=CELL_TIMEOUT_S, startup_timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()                     # shuts its kernel down; raises CellExecutionError naming the cell
    assert nb.cells[0].outputs[0]["text"].strip() == sys.executable
    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    assert [o for o in outputs if o.output_type == "error"] == []
    assert sum("image/png" in o.get("data", {}) for o in outputs) == PLOTS[name]
    assert (tmp_path / "runs").is_dir()
