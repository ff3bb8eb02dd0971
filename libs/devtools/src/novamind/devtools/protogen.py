"""Generate the Python gRPC/protobuf stubs and copy the event JSON Schemas into ``libs/api``.

Usage::

    python -m novamind.devtools.protogen [--out DIR]

Every ``.proto`` under ``proto/`` is compiled with ``grpc_tools.protoc`` into
``DIR/novamind/api/<domain>/v1/`` (``*_pb2.py``, ``*_pb2_grpc.py`` and their ``.pyi`` stubs
from mypy-protobuf); JSON Schemas under ``proto/schemas/`` are copied byte for byte into
``DIR/novamind/api/schemas/``. ``DIR`` defaults to ``libs/api/src``.

The output is deterministic (sorted inputs, repository-relative proto paths, no timestamps), so
regenerating an unchanged tree yields byte-identical files and ``tests/contracts`` can detect
stale or hand-edited stubs. Previously generated files are deleted first; ``DIR/novamind`` stays
a PEP 420 namespace (no ``__init__.py`` there).
"""

from __future__ import annotations

import argparse
import importlib.resources
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: Suffixes of files protoc and mypy-protobuf write; anything else under the package is kept.
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")

#: Written into ``novamind/api/__init__.py``.
API_PACKAGE_DOCSTRING = (
    '"""Novamind v1 contracts: generated from proto/ by `python -m novamind.devtools.protogen`.'
    ' Do not edit."""\n'
)


#: Runs ``grpc_tools.protoc`` on the child's command line (``sys.argv[0]`` is ``-c``).
_PROTOC_MAIN = "import sys; from grpc_tools import protoc; sys.exit(protoc.main(sys.argv))"


class ProtogenError(RuntimeError):
    """Stub generation failed: no ``proto/`` tree, a missing plugin, or a protoc error."""


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (then this file, then the cwd) with ``proto/``.

    Raises :class:`ProtogenError` when none is found.
    """
    candidates = [start] if start is not None else [Path(__file__), Path.cwd()]
    for candidate in candidates:
        for directory in [candidate.resolve(), *candidate.resolve().parents]:
            if (directory / "proto").is_dir():
                return directory
    raise ProtogenError("no proto/ directory found above " + ", ".join(str(c) for c in candidates))


def _plugin(name: str) -> Path:
    """The mypy-protobuf plugin executable installed next to the running interpreter."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise ProtogenError(f"{name} not found next to {sys.executable}; install mypy-protobuf")
    return path


def _clean(api_dir: Path) -> None:
    """Delete previously generated stubs, package markers and copied schemas under ``api_dir``."""
    if not api_dir.exists():
        return
    schemas_dir = api_dir / "schemas"
    for path in sorted(api_dir.rglob("*"), reverse=True):
        if "__pycache__" in path.parts:
            continue
        if path.is_file():
            in_schemas = schemas_dir in path.parents
            generated = (
                path.name.endswith(GENERATED_SUFFIXES)
                or (path.name == "__init__.py" and not in_schemas)
                or path == api_dir / "py.typed"
                or (in_schemas and path.name.endswith(".json"))
            )
            if generated:
                path.unlink()
    # Remove directories left empty (or holding only bytecode caches).
    for directory in sorted((p for p in api_dir.rglob("*") if p.is_dir()), reverse=True):
        if directory.name == "__pycache__":
            continue
        leftovers = [p for p in directory.iterdir() if p.name != "__pycache__"]
        if not leftovers:
            shutil.rmtree(directory)


def _run_protoc(proto_root: Path, protos: Sequence[Path], out_dir: Path) -> None:
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    with importlib.resources.as_file(well_known) as well_known_dir:
        args = [
            f"--proto_path={proto_root}",
            f"--proto_path={well_known_dir}",
            f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
            f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            f"--mypy_out=quiet:{out_dir}",
            f"--mypy_grpc_out=quiet:{out_dir}",
            # Paths relative to the include root, so nothing machine-specific reaches the output.
            *(p.relative_to(proto_root).as_posix() for p in protos),
        ]
        # In a child interpreter: protoc's C++ protobuf clashes with other copies loaded in the
        # calling process (TensorFlow's, in a test run) and crashes it.
        status = subprocess.run([sys.executable, "-c", _PROTOC_MAIN, *args], check=False).returncode
    if status != 0:
        raise ProtogenError(f"protoc failed with exit status {status} (see messages above)")


def _write_package_markers(api_dir: Path, generated: Sequence[Path]) -> list[Path]:
    """``__init__.py`` in ``novamind/api`` and each generated package below it, plus ``py.typed``."""
    written: list[Path] = []
    init = api_dir / "__init__.py"
    init.write_text(API_PACKAGE_DOCSTRING, encoding="utf-8")
    written.append(init)
    package_dirs = {
        parent
        for path in generated
        for parent in path.parents
        if api_dir in parent.parents  # strictly below novamind/api
    }
    for directory in sorted(package_dirs):
        marker = directory / "__init__.py"
        marker.write_bytes(b"")
        written.append(marker)
    py_typed = api_dir / "py.typed"
    py_typed.write_bytes(b"")
    written.append(py_typed)
    return written


def _copy_schemas(schema_root: Path, schemas_dir: Path) -> list[Path]:
    copied: list[Path] = []
    if not schema_root.is_dir():
        return copied
    for source in sorted(schema_root.rglob("*.json")):
        target = schemas_dir / source.relative_to(schema_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        copied.append(target)
    return copied


def generate(out_dir: Path, repo_root: Path | None = None) -> list[Path]:
    """Regenerate every stub and schema copy under ``out_dir/novamind/api``.

    ``repo_root`` is the directory holding ``proto/``; found from this file or the cwd when
    omitted. Returns the written files, sorted. Raises :class:`ProtogenError` when protoc fails
    or a plugin is missing.
    """
    root = repo_root if repo_root is not None else find_repo_root()
    proto_root = root / "proto"
    protos = sorted(
        (p for p in proto_root.rglob("*.proto") if "schemas" not in p.relative_to(proto_root).parts),
        key=lambda p: p.relative_to(proto_root).as_posix(),
    )
    if not protos:
        raise ProtogenError(f"no .proto files under {proto_root}")

    out_dir = out_dir.resolve()
    api_dir = out_dir / "novamind" / "api"
    _clean(api_dir)
    api_dir.mkdir(parents=True, exist_ok=True)

    _run_protoc(proto_root, protos, out_dir)
    generated = sorted(p for p in api_dir.rglob("*") if p.is_file() and p.name.endswith(GENERATED_SUFFIXES))
    markers = _write_package_markers(api_dir, generated)
    schemas = _copy_schemas(proto_root / "schemas", api_dir / "schemas")
    return sorted([*generated, *markers, *schemas])


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m novamind.devtools.protogen",
        description="Generate the Python stubs and schema copies in libs/api from proto/.",
    )
    parser.add_argument("--out", type=Path, default=None, help="output root (default: libs/api/src)")
    args = parser.parse_args(argv)
    try:
        root = find_repo_root()
        out_dir = args.out if args.out is not None else root / "libs" / "api" / "src"
        written = generate(out_dir, root)
    except ProtogenError as exc:
        print(f"protogen: {exc}", file=sys.stderr)
        return 1
    print(f"protogen: wrote {len(written)} files under {out_dir.resolve() / 'novamind' / 'api'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
