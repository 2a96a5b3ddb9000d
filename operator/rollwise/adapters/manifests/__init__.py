"""The wire form of what rollwise writes (builders.py) and reads back (readers.py), and the
shapes they share (types.py)."""
