"""Rewrite README.md's option table from the parser (tests/test_cli_options.py checks they are equal).

    python tools/readme_options.py
"""

from pathlib import Path

from dnervcodec.cli import options_markdown

readme = Path(__file__).parents[1] / "README.md"
text = readme.read_text()
table = options_markdown()
start = text.index(table.splitlines()[0])
end = text.find("\n\n", start)
readme.write_text(text[:start] + table.rstrip("\n") + text[end if end >= 0 else len(text):])
