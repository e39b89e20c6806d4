"""The README keeps its promises: the two commands first, and every setting documented."""

from __future__ import annotations

from bot.config import ROOT, Settings

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    assert "make run" in first_block
    assert "make test" in first_block
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci  # CI runs the README's test command, nothing weaker


def test_every_setting_is_in_the_configuration_table() -> None:
    for name, field in Settings.model_fields.items():
        variable = field.validation_alias or f"BOT_{name.upper()}"
        assert f"| `{variable}` |" in README, f"{variable} is not documented"
