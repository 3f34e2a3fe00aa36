from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from deployments.plugin import PluginRunner
from percept.plugins import InvalidPlugin, discover_plugins, load_plugin_class, register_plugin

ROOT = Path(__file__).resolve().parents[3]

GOOD_AUDIO = '''
from core.plugins import AudioChunk, AudioProcessingResult, register_plugin


@register_plugin
class CountingPlugin:
    name = "counting"
    languages = ["en"]
    description = "says how many bytes the file has"

    @staticmethod
    def process_audio(filename: str) -> AudioProcessingResult:
        size = len(open(filename, "rb").read())
        return AudioProcessingResult(text=str(size), segments=[AudioChunk(start=0, end=1.5, text=str(size))])
'''

BROKEN = '''
import a_module_that_does_not_exist
'''

NO_NAME = '''
from percept.plugins import register_plugin


@register_plugin
class Nameless:
    languages = ["en"]
    description = "x"

    @staticmethod
    def process_image(filename):
        return None
'''


def write(directory: Path, name: str, code: str) -> None:
    (directory / name).write_text(textwrap.dedent(code))


def test_discovery_skips_broken_files_and_reports_them(tmp_path: Path) -> None:
    write(tmp_path, "counting_plugin.py", GOOD_AUDIO)
    write(tmp_path, "broken_plugin.py", BROKEN)
    write(tmp_path, "nameless_plugin.py", NO_NAME)
    write(tmp_path, "helper.py", "raise RuntimeError('not a plugin file: never imported')")
    found = discover_plugins(tmp_path)
    assert list(found.plugins) == ["counting"]
    info = found.plugins["counting"]
    assert info.kind == "audio" and info.languages == ["en"] and info.class_name == "CountingPlugin"
    errors = {e.file: e.error for e in found.errors}
    assert set(errors) == {"broken_plugin.py", "nameless_plugin.py"}
    assert "ModuleNotFoundError" in errors["broken_plugin.py"]
    assert "name" in errors["nameless_plugin.py"]


def test_runner_runs_a_plugin_on_files(tmp_path: Path) -> None:
    write(tmp_path, "counting_plugin.py", GOOD_AUDIO)
    cls = load_plugin_class(tmp_path / "counting_plugin.py", "CountingPlugin")
    sample = tmp_path / "sample.bin"
    sample.write_bytes(b"12345")
    missing = tmp_path / "missing.bin"
    results = PluginRunner(cls).process([str(sample), str(missing)])
    assert results[0] == {"text": "5", "segments": [{"start": 0.0, "end": 1.5, "text": "5", "words": []}]}
    assert isinstance(results[1], FileNotFoundError)


def test_register_plugin_requires_exactly_one_process_method() -> None:
    with pytest.raises(InvalidPlugin):

        @register_plugin
        class Both:
            name = "both"
            languages = ["en"]
            description = "x"

            @staticmethod
            def process_audio(filename: str) -> None: ...

            @staticmethod
            def process_image(filename: str) -> None: ...


def test_missing_directory_is_empty(tmp_path: Path) -> None:
    found = discover_plugins(tmp_path / "nope")
    assert found.plugins == {} and found.errors == []


def test_readme_plugin_example_loads_and_runs(tmp_path: Path) -> None:
    """The example in README.md is a working plugin."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- plugin-example -->\s*```python\n(.*?)```", readme, re.S)
    assert match, "README.md must contain the plugin example"
    write(tmp_path, "shout_plugin.py", match.group(1))
    found = discover_plugins(tmp_path)
    assert not found.errors, found.errors
    (info,) = found.plugins.values()
    image = tmp_path / "page.png"
    from PIL import Image

    Image.new("RGB", (40, 20), "white").save(image)
    cls = load_plugin_class(info.file, info.class_name)
    (result,) = PluginRunner(cls).process([str(image)])
    assert isinstance(result, dict) and result["boxes"][0]["coordinates"]["right_bottom"] == {"x": 40, "y": 20}


def test_shipped_plugins_directory_loads_cleanly() -> None:
    found = discover_plugins(ROOT / "plugins")
    assert not found.errors, found.errors
