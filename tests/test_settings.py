from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import SettingsError, describe, load_settings

KEY_A, KEY_B, KEY_C = ("key-a-" + "x" * 10, "key-b-" + "x" * 10, "key-c-" + "x" * 10)  # keys are 16+ characters


def test_precedence_defaults_toml_env_cli(tmp_path: Path) -> None:
    toml = tmp_path / "arena.toml"
    toml.write_text('[arena]\nport = 9001\nhost = "0.0.0.0"\nparallel = 3\nmax-queue = 5\n')
    assert load_settings().port == 8000
    s = load_settings(config_file=toml)
    assert (s.port, s.host, s.parallel, s.max_queue) == (9001, "0.0.0.0", 3, 5)
    s = load_settings(env={"ARENA_PORT": "9002", "ARENA_API_KEY": f"{KEY_A}, {KEY_B}"}, config_file=toml)
    assert (s.port, s.host, s.api_key) == (9002, "0.0.0.0", [KEY_A, KEY_B])
    s = load_settings(
        {"port": "9003", "api_key": [KEY_C]}, env={"ARENA_PORT": "9002", "ARENA_API_KEY": KEY_A}, config_file=toml
    )
    assert (s.port, s.api_key) == (9003, [KEY_C])


def test_config_file_from_env(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("port = 1234\n")
    assert load_settings(env={"ARENA_CONFIG": str(toml)}).port == 1234


def test_none_cli_values_do_not_override() -> None:
    assert load_settings({"port": None}, env={"ARENA_PORT": "7000"}).port == 7000


@pytest.mark.parametrize("env", [{"ARENA_PORT": "eighty"}, {"ARENA_PORT": "70000"}, {"ARENA_NOPE": "1"}])
def test_invalid_values_are_clear_errors(env: dict[str, str]) -> None:
    if "ARENA_NOPE" in env:
        assert load_settings(env=env).port == 8000  # unknown env vars are ignored
        return
    with pytest.raises(SettingsError, match="port"):
        load_settings(env=env)


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings(config_file=toml)


def test_every_setting_is_described() -> None:
    rows = describe()
    assert rows and all(desc for *_, desc in rows)
    assert ("--port", "ARENA_PORT", "8000", "TCP port to listen on.") in rows
