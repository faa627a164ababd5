"""Executing one notebook with papermill, after checking its parameters.

Papermill itself only warns about a parameter the notebook does not declare; here every
parameter is checked against the notebook's ``parameters`` cell (name and type) before a
kernel starts, and a failing cell becomes one :class:`NotebookRunError` naming the cell, its
error and where the partially executed notebook was kept.

The notebooks live in the repository's top-level ``notebooks/`` folder; the wheel carries
them inside the package, as ``prunefuse/notebooks/`` (``pyproject.toml`` maps the one onto the
other), so an installed ``prunefuse`` finds them from any working directory. :data:`NOTEBOOKS`
is whichever of the two this ``prunefuse`` has; :func:`copy_notebooks` (``prunefuse notebooks
DIR``) copies them into a folder of the user's own.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ..run.config import NONE, PARAMS, PROFILES, ConfigError, make_config, parse_override
from ..run.records import DEFAULT_OUT

EXPERIMENT = "experiment.ipynb"  # one run: prunefuse.experiment.run_experiment
PACKAGE = Path(__file__).resolve().parents[1]  # the prunefuse package


# Parameters of the experiment notebook besides the run parameters (every key of PARAMS).
# name -> (type, default, meaning), as the parameters cell declares them.
NOTEBOOK_EXTRAS: dict[str, tuple[str, str, str]] = {
    "profile": ("str", '"demo"', "where a parameter below is None: "
                + " or ".join([", ".join(list(PROFILES)[:-1]), list(PROFILES)[-1]])),
    "out": ("str", f'"{DEFAULT_OUT}"', "parent folder of run records; this run lives in out/<run_id>"),
    "progress": ("bool", "True", "tqdm progress bars while training"),
}


def notebook_parameters_cell() -> str:
    """The ``parameters`` cell of the experiment notebook: :data:`NOTEBOOK_EXTRAS`, then every
    key of :data:`PARAMS` with default None (= the profile's value), annotated so that
    papermill lists its type. A test keeps the shipped notebook equal to this."""
    lines = [f"{k}: {kind} = {default}  # {text}"
             for k, (kind, default, text) in NOTEBOOK_EXTRAS.items()]
    for key, spec in PARAMS.items():
        first = next(t for t in spec.types if t is not NONE).__name__
        # papermill reads a line with a second "=" as no parameter at all
        text = spec.help.replace(">=", "at least").replace(" = ", ": ").replace("=", ": ")
        lines.append(f'{key}: "Optional[{first}]" = None  # {text}')
    return "\n".join(lines)


def _passed_names(namespace: dict[str, Any]) -> set[str]:
    """Names papermill passed to a notebook: those assigned in its injected cell, which the
    kernel's input history ``In`` holds (papermill starts that cell with ``# Parameters``).
    Outside IPython: none can be told apart, so none."""
    history = namespace.get("In")
    names: set[str] = set()
    if not isinstance(history, list):
        return names
    for source in history:
        if isinstance(source, str) and source.lstrip().startswith("# Parameters"):
            try:
                body = ast.parse(source).body
            except SyntaxError:
                continue
            names = {t.id for node in body if isinstance(node, ast.Assign)
                     for t in node.targets if isinstance(t, ast.Name)}
    return names


def from_notebook(namespace: dict[str, Any]) -> dict[str, Any]:
    """The run config of the experiment notebook, read from its ``globals()`` after papermill
    injected the parameters (every key of :data:`PARAMS`, plus :data:`NOTEBOOK_EXTRAS`).

    A run parameter left at None takes the value of the notebook's ``profile``. Papermill only
    warns about a name the notebook does not declare (``-p ratoi 0.5``) and runs on; here it
    is an error, whoever ran papermill. A string given for a list, number or bool parameter
    (``-p budgets 0.1,0.2``) is parsed as on the command line (:func:`parse_override`).

    Raises:
        ConfigError: an unknown name, a wrong type or value; the message names it.
    """
    unknown = sorted(_passed_names(namespace) - set(PARAMS) - set(NOTEBOOK_EXTRAS))
    if unknown:
        raise ConfigError(f"unknown notebook parameter(s) {unknown}; allowed: "
                          f"{sorted([*NOTEBOOK_EXTRAS, *PARAMS])}")
    params = {}
    for key in PARAMS:
        value = namespace.get(key)
        if isinstance(value, str) and str not in PARAMS[key].types:
            value = parse_override(f"{key}={value}")[1]
        if value is not None:
            params[key] = value
    return make_config(namespace.get("profile"), **params)


def notebook_folder(package: str | os.PathLike = PACKAGE) -> Path:
    """The folder holding the notebooks of the ``prunefuse`` package at ``package``.

    An installed wheel has them inside the package (``<package>/notebooks``); a source
    checkout, or an editable install of one, in the repository's top-level ``notebooks/``
    beside the package folder. The first of the two that holds :data:`EXPERIMENT` wins; if
    neither does, the package's own (so that a message names where a wheel puts them).
    """
    package = Path(package)
    for folder in (package / "notebooks", package.parent / "notebooks"):
        if (folder / EXPERIMENT).is_file():
            return folder
    return package / "notebooks"


NOTEBOOKS = notebook_folder()
# True where the notebooks are the installed package's own files (a wheel): nothing is ever
# written there; False in a source checkout (top-level notebooks/, whose runs/ is git-ignored).
SHIPPED = NOTEBOOKS.parent == PACKAGE
_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (float, int),
                                       "bool": (bool,), "list": (list,), "dict": (dict,)}


class ParameterError(ConfigError):
    """A notebook parameter is unknown or of the wrong type."""


class NotebookRunError(RuntimeError):
    """A notebook failed; names the cell and its error, and where the partial notebook is."""

    def __init__(self, message: str, *, output: Path, cell: int | None = None,
                 ename: str | None = None, evalue: str | None = None):
        super().__init__(message)
        self.output, self.cell, self.ename, self.evalue = output, cell, ename, evalue


def declared_types(spec: dict) -> tuple[type, ...] | None:
    """The types a parameter's annotation accepts (``float``, ``"Optional[int]"``), or None
    if it has none that is known."""
    name = spec["inferred_type_name"]
    optional = name.startswith("Optional[") and name.endswith("]")
    types = _TYPES.get(name[len("Optional["):-1] if optional else name)
    if types is None:
        return None
    return (*types, type(None)) if optional else types


def beside_notebook(namespace: dict[str, Any], *parts: str, notebook: str | None = None) -> Path:
    """A path in the folder of the running notebook, whatever the kernel's working directory.

    The notebook is the one Jupyter names (``__session__`` in ``namespace``, or the
    ``JPY_SESSION_NAME`` environment variable; VS Code's ``__vsc_ipynb_file__``), when that is
    an existing ``.ipynb``. Papermill does not tell the kernel which notebook runs: then the
    working directory when it holds ``notebook`` (papermill run from the notebook's folder,
    e.g. a copy made by ``prunefuse notebooks DIR``), else, in a source checkout, the
    checkout's notebook folder (top-level ``notebooks/``; ``runs/`` there is git-ignored)
    where it is writable, else the working directory. Never the installed
    package's notebook folder: a notebook opened there is refused with a
    :class:`ConfigError` that says how to get a copy of one's own (``prunefuse notebooks DIR``).

    Args:
        namespace: the notebook's ``globals()``.
        *parts: path components below that folder.
        notebook: the file name of the calling notebook (``"quickstart.ipynb"``), to
            recognise its folder under papermill; or its absolute path, which a copy made by
            :func:`copy_notebooks` carries, so that papermill run from any folder writes
            beside the copy (while the file is there); None: not looked for.
    """
    names = (namespace.get("__session__"), os.environ.get("JPY_SESSION_NAME"),
             namespace.get("__vsc_ipynb_file__"))
    for name in names:
        if isinstance(name, str) and name.endswith(".ipynb") and Path(name).is_file():
            base = Path(name).resolve().parent
            break
    else:
        if notebook and Path(notebook).is_absolute() and Path(notebook).is_file():
            base = Path(notebook).parent  # a copy that knows where it was put (copy_notebooks)
        elif notebook and (Path.cwd() / Path(notebook).name).is_file():
            base = Path.cwd()
        elif not SHIPPED and os.access(NOTEBOOKS, os.W_OK):
            base = NOTEBOOKS
        else:
            base = Path.cwd()
    if SHIPPED and base.resolve().is_relative_to(NOTEBOOKS.resolve()):
        raise ConfigError(f"{base} holds the notebooks installed with the package; nothing is "
                          f"written there: copy them into a folder of your own with `prunefuse "
                          f"notebooks DIR` and open them from DIR")
    return base.joinpath(*parts)


def copy_notebooks(dest: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Copy the notebooks (every ``*.ipynb`` of :data:`NOTEBOOKS`) into ``dest``, created if
    needed; the copies are ordinary writable files, whatever the mode of the installed ones.

    Raises:
        ConfigError: ``dest`` is not a folder, is :data:`NOTEBOOKS` itself, or already holds a
            notebook of the same name (unless ``force``); nothing is copied then.
        FileNotFoundError: :data:`NOTEBOOKS` holds no notebook.
    """
    dest = Path(dest)
    sources = sorted(NOTEBOOKS.glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"no notebooks in {NOTEBOOKS}")
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest}: exists and is not a folder")
    if dest.exists() and dest.resolve() == NOTEBOOKS.resolve():
        raise ConfigError(f"{dest}: is the folder the notebooks are copied from")
    clash = [p.name for p in sources if (dest / p.name).exists()]
    if clash and not force:
        shown = ", ".join(clash[:3]) + (f" and {len(clash) - 3} more" if len(clash) > 3 else "")
        raise ConfigError(f"{dest}: would overwrite {len(clash)} existing notebook(s) ({shown}); "
                          "pass --force to replace them")
    dest.mkdir(parents=True, exist_ok=True)
    copies = [Path(shutil.copyfile(p, dest / p.name)) for p in sources]
    for copy in copies:
        _point_at_itself(copy)
    return copies


def _point_at_itself(copy: Path) -> None:
    """Give a copied notebook its own absolute path where it calls :func:`beside_notebook`
    (``notebook="quickstart.ipynb"`` becomes ``notebook='/abs/DIR/quickstart.ipynb'``): under
    papermill the kernel is not told which notebook it runs, and a copy's records belong
    beside the copy, from whatever folder it is run."""
    text = copy.read_text(encoding="utf-8")
    nb = json.loads(text)
    plain = f'notebook="{copy.name}"'
    found = False
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            lines = cell["source"] if isinstance(cell["source"], list) else [cell["source"]]
            if any(plain in line for line in lines):
                found = True
                cell["source"] = [line.replace(plain, f"notebook={str(copy.resolve())!r}")
                                  for line in lines]
    if found:
        copy.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, dict]:
    """The parameters a notebook declares (papermill's view of its ``parameters`` cell):
    name -> {``inferred_type_name``, ``default``, ``help``}."""
    import papermill

    path = Path(notebook)
    if not path.exists():
        raise FileNotFoundError(f"notebook {str(path)!r} does not exist")
    return papermill.inspect_notebook(str(path))


def check_parameters(notebook: str | os.PathLike, parameters: dict[str, Any]) -> None:
    """Refuse parameters a notebook does not declare, or of another type than its default.

    Raises:
        ParameterError: naming the parameter, what it got, and what the notebook declares.
    """
    declared = notebook_parameters(notebook)
    name = Path(notebook).name
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ParameterError(f"{name}: unknown parameter(s) {unknown}; it declares "
                             f"{sorted(declared)}")
    for key, value in parameters.items():
        spec = declared[key]
        types = declared_types(spec)
        if types is None:  # no annotation: take the type of the default literal
            try:
                types = (type(ast.literal_eval(spec["default"])),)
            except (ValueError, SyntaxError):
                continue
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ParameterError(
                f"{name}: parameter {key}={value!r} is {type(value).__name__}, expected "
                f"{' or '.join(t.__name__ for t in types)} (default {spec['default']}: "
                f"{spec['help']})")


def check_kernel() -> None:
    """:class:`ConfigError` unless the ``python3`` Jupyter kernel the notebooks run in exists."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel as err:
        raise ConfigError("jupyter kernel 'python3' is not installed; run `python -m ipykernel "
                          "install --sys-prefix --name python3`") from err


def kernel_config() -> dict[str, dict[str, str]]:
    """How the kernel of :func:`execute_notebook` talks to papermill: on POSIX, Unix sockets
    under a name no other kernel has (``<tmp>/prunefuse-kernel-<random>-<n>``).

    Over TCP (Jupyter's default) the kernel manager picks free ports, releases them, and the
    kernel binds them a moment later; a kernel started at the same time by another run, or a
    Ray worker binding its own ports, can take one in between, and the kernel then dies before
    the first cell ("Address already in use"). Unix socket names cannot collide that way.
    Windows, and a temporary folder whose path would pass the socket-name limit, keep TCP.
    """
    base = os.path.join(tempfile.gettempdir(), f"prunefuse-kernel-{uuid.uuid4().hex[:12]}")
    if os.name != "posix" or len(base) > 90:  # sun_path holds 107 bytes; "-<port>" follows
        return {}
    return {"KernelManager": {"transport": "ipc", "ip": base}}


def execute_notebook(notebook: str | os.PathLike, output: str | os.PathLike,
                     parameters: dict[str, Any], *, cwd: str | os.PathLike | None = None) -> Path:
    """Check ``parameters``, then execute ``notebook`` into ``output`` in a fresh ``python3``
    kernel (a process of its own, on the sockets of :func:`kernel_config`); ``output`` is saved
    after every cell.

    Raises:
        ParameterError: before anything runs (see :func:`check_parameters`).
        NotebookRunError: a cell raised, or the kernel died; ``output`` keeps the partial
            notebook and the message names the cell.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError
    from traitlets.config import Config

    check_parameters(notebook, parameters)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters,
                                   kernel_name="python3", progress_bar=False,
                                   cwd=None if cwd is None else str(cwd),
                                   request_save_on_cell_execute=True,
                                   config=Config(kernel_config()))
    except PapermillExecutionError as err:
        first = next((line for line in err.source.splitlines() if line.strip()), "")
        raise NotebookRunError(
            f"{Path(notebook).name} failed in cell In [{err.exec_count}] (`{first.strip()}`): "
            f"{err.ename}: {err.evalue}\npartial notebook kept at {output}",
            output=output, cell=err.exec_count, ename=err.ename, evalue=err.evalue) from None
    except Exception as err:  # kernel died, timed out, could not start
        raise NotebookRunError(f"{Path(notebook).name} did not finish: {type(err).__name__}: "
                               f"{err}\npartial notebook kept at {output}", output=output) from err
    return output


__all__ = ["NOTEBOOKS", "EXPERIMENT", "PACKAGE", "SHIPPED", "notebook_folder", "beside_notebook",
           "copy_notebooks", "ParameterError", "NotebookRunError",
           "notebook_parameters", "check_parameters", "declared_types", "check_kernel",
           "execute_notebook", "kernel_config", "NOTEBOOK_EXTRAS", "notebook_parameters_cell",
           "from_notebook"]
