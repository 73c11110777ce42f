"""``python -m writethrough.cli``: the same as the ``writethrough`` command."""

from . import main

if __name__ == "__main__":
    main()
