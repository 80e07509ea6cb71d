"""Hugging Face adapters for treesearch, installed as ``treesearch.adapters``.

The folder is called ``adapters`` in the repository, which is also the import name of the
AdapterHub package on PyPI; importing it under any other name is refused loudly.
"""

if __name__ != "treesearch.adapters":
    raise ImportError(
        f"this package must be imported as 'treesearch.adapters', not {__name__!r} "
        "(a bare 'import adapters' would shadow the AdapterHub package)"
    )

__all__: list[str] = []
