"""Documentation generated from the code: the README's configuration table.

python -m app.cli.docs   # prints the table; tests check README.md holds exactly this
"""

from __future__ import annotations

from app.settings import describe

BEGIN = "<!-- settings-table:begin -->"
END = "<!-- settings-table:end -->"


def settings_table() -> str:
    lines = ["| Flag | Environment | Default | Description |", "| --- | --- | --- | --- |"]
    for flag, env, default, description in describe():
        shown = f"`{default}`" if default else ""
        lines.append(f"| `{flag}` | `{env}` | {shown} | {description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_table())
