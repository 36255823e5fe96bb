"""The package's layout rules, checked on the source: private names stay private, and the one
dataset the package ships with is named only by the data package and the embedded-model
registry."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "bigr"
# Where the built-in dataset and the embedded models trained on it may be named.
DATASET_AWARE = ("data/", "checkpoint.py", "demo.py", "config/")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(PACKAGE)}:{node.lineno}: {'.' * node.level}{node.module or ''}"
        f" imports {alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if _is_private(alias.name)
    ]


def test_the_layout_sees_every_module():
    names = {path.relative_to(PACKAGE).as_posix() for path in _modules()}
    assert {"data/datasets.py", "serve/app.py", "config/models.py", "cli.py"} <= names


def test_no_module_imports_another_modules_private_name():
    offences = [line for path in _modules() for line in _private_imports(path)]
    assert offences == []


def _without_registry_names(text: str) -> str:
    """The text with the embedded models' registry names (`bigr:fashion`, ...) removed: a
    docstring example may load an embedded model by name, as a user does."""
    return re.sub(r"bigr:fashion[\w-]*", "", text)


def test_only_the_data_package_and_the_model_registry_name_the_dataset():
    offences = [
        path.relative_to(PACKAGE).as_posix()
        for path in _modules()
        if not path.relative_to(PACKAGE).as_posix().startswith(DATASET_AWARE)
        and "fashion" in _without_registry_names(path.read_text()).lower()
    ]
    assert offences == []
