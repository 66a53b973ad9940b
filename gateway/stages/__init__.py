"""The run loop's stages: intake, pre-cert gate, batching, exchange, inbound, outbox, deadlines.

Each stage takes the shared context, does one unit of work per cycle and records every side effect in the
store before and after it happens. ``base`` defines the one ``Stage`` shape (``stage(ctx, cycle)``) and
``pipeline`` adapts each stage module to it; ``outbox`` is the only writer of result files.
"""
