"""Regenerate the Python gRPC code of protos/ into services/modelverse/v1/.

    .venv/bin/python tools/gen_protos.py          # write the generated files
    .venv/bin/python tools/gen_protos.py --check  # exit 1 if they differ from protos/

The proto package is ``modelverse.v1`` and the files live under protos/modelverse/v1/, so
protoc's generated imports (``from modelverse.v1 import search_pb2``) resolve to the Python
package ``modelverse.v1`` inside ``services/modelverse`` with no rewriting.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
OUTPUT_ROOT = ROOT / "services"
PACKAGE_DIR = Path("modelverse") / "v1"
INIT_TEXT = '"""Generated gRPC code of protos/modelverse/v1 (tools/gen_protos.py); do not edit."""\n'


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))


def generate(output_root: Path) -> list[Path]:
    """Run protoc into output_root; returns the generated files relative to it."""
    (output_root / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={output_root}",
        f"--pyi_out={output_root}",
        f"--grpc_python_out={output_root}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (output_root / PACKAGE_DIR / "__init__.py").write_text(INIT_TEXT)
    return sorted(p.relative_to(output_root) for p in (output_root / PACKAGE_DIR).glob("*.py*"))


def out_of_sync() -> list[str]:
    """Generated files that differ from (or are missing in) services/modelverse/v1/."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = [str(p) for p in fresh if not (OUTPUT_ROOT / p).exists()
                 or not filecmp.cmp(Path(tmp) / p, OUTPUT_ROOT / p, shallow=False)]
        current = {p.relative_to(OUTPUT_ROOT) for p in (OUTPUT_ROOT / PACKAGE_DIR).glob("*.py*")}
        stale += [f"{p} (no proto makes it)" for p in sorted(current - set(fresh))]
        return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when out of sync")
    args = parser.parse_args()
    if args.check:
        stale = out_of_sync()
        for path in stale:
            print(f"out of sync: services/{path}", file=sys.stderr)
        if stale:
            print("run: .venv/bin/python tools/gen_protos.py", file=sys.stderr)
        return 1 if stale else 0
    for path in generate(OUTPUT_ROOT):
        print(f"services/{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
