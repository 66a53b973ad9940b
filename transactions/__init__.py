"""Pure X12 core: read, write, envelope, build and validate 5010 270/271/278/999/TA1.

Nothing in this package touches files, sockets, databases, the clock or logging: bytes and objects go
in, objects and bytes come out; control numbers and timestamps are parameters.
"""
