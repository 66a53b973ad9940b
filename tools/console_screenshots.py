"""Screenshots of the console for the README: the dashboard and a request chain, taken with Debian's
headless Chromium from a fresh ``x12gw demo`` workspace (so they show exactly what a new user sees).

    .venv/bin/python tools/console_screenshots.py

writes docs/console-dashboard.png and docs/console-request-chain.png.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.runtime.config import load_config  # noqa: E402
from gateway.runtime.storeopen import open_store  # noqa: E402
from gateway.web import users  # noqa: E402
from tests.web_support import PASSWORD, chromium, make_demo, serve  # noqa: E402

DOCS = ROOT / "docs"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="x12gw-shots-") as tmp:
        config = make_demo(Path(tmp) / "ws")
        store = open_store(load_config(config), role="operator")  # with the keys: payloads are sealed
        users.add_user(store, "alice", "operator", PASSWORD)
        with store.read() as tx:
            pended = [
                r
                for r in tx.requests.query(kind="278", limit=100)
                if r.payload.get("client_reference") == "AU-0001"
            ]
        store.close()
        DOCS.mkdir(exist_ok=True)
        with serve(config) as srv, chromium(Path(tmp) / "profile", width=1280, height=1100) as driver:
            driver.get(srv.url + "/console/login")
            driver.find_element("id", "name").send_keys("alice")
            driver.find_element("id", "password").send_keys(PASSWORD)
            driver.find_element("id", "login").click()
            driver.save_screenshot(str(DOCS / "console-dashboard.png"))
            driver.get(f"{srv.url}/console/requests/{pended[0].tracking_number}")
            driver.save_screenshot(str(DOCS / "console-request-chain.png"))
    sys.stdout.write(f"wrote {DOCS / 'console-dashboard.png'} and {DOCS / 'console-request-chain.png'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
