"""Test helper: make a child interpreter unable to import some packages, to
check the path a machine without them takes (run as `python -c`)."""


def blocking(*packages: str) -> str:
    """Python source to put before the code of `python -c`: importing any of
    `packages`, or a module inside them, then raises ImportError."""
    return f"""
import sys
class Block:
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {packages!r}:
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
"""
