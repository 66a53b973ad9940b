"""Judge X12 files with LinuxForHealth x12 (run by the differential test inside its own venv).

Reads a JSON list of paths on stdin and prints one JSON object per path: ``{"path", "valid", "error"}``;
``valid`` is true when every transaction set parses into LinuxForHealth's pydantic models, and
``error`` names the exception type and its message on one line (test data, synthetic).
This file runs under the other tool's interpreter and imports nothing from this project.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def judge(path: str) -> dict[str, object]:
    from linuxforhealth.x12.io import X12ModelReader  # noqa: PLC0415 - only in the judge's own venv

    try:
        data = Path(path).read_text(encoding="latin-1")
        with X12ModelReader(data) as reader:
            models = list(reader.models())
    except Exception as exc:  # noqa: BLE001 - any refusal is the other tool's verdict
        text = " | ".join(line.strip() for line in str(exc).splitlines())[:600]
        return {"path": path, "valid": False, "error": f"{type(exc).__name__}: {text}"}
    return {"path": path, "valid": bool(models), "error": None if models else "no model"}


def main() -> None:
    for path in json.load(sys.stdin):
        sys.stdout.write(json.dumps(judge(path)) + "\n")


if __name__ == "__main__":
    main()
