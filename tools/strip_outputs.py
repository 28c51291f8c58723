"""Clear outputs and execution counts from notebooks (the pre-commit hook; standard library only).

    python tools/strip_outputs.py notebooks/*.ipynb

Rewrites each notebook that had outputs, execution counts or saved widget state, in
nbformat's layout (one-space indent, sorted keys), and exits 1 if it changed any, so
pre-commit stops the commit: look at the change, ``git add`` it, commit again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def strip(nb: dict) -> bool:
    """Clear ``nb`` in place; True if anything was removed."""
    changed = False
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            cell["outputs"] = []
            changed = True
        if cell.get("execution_count") is not None:
            cell["execution_count"] = None
            changed = True
    if "widgets" in nb.get("metadata", {}):
        del nb["metadata"]["widgets"]
        changed = True
    return changed


def main(paths: list[str]) -> int:
    changed = []
    for name in paths:
        path = Path(name)
        nb = json.loads(path.read_text(encoding="utf-8"))
        if strip(nb):
            text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    for name in changed:
        print(f"cleared outputs: {name}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
