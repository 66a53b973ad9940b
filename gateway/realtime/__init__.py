"""Real time: requests of ``transport = "core"`` partners sent over CAQH CORE connectivity (HTTPS)."""
