"""The launch files are checked statically here (``launch``/``launch_ros`` are not on PyPI):
they compile, every executable they start is installed by setup.py (console script for colcon,
wrapper in resource/lib for pip), every parameter file exists and every parameter name they set
exists in the node's schema. Where launch_pytest is installed, the sim launch really runs."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import yaml

from lnn_drone.config import flatten
from lnn_drone.ros.node_config import NODE_SCHEMAS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
ROS_OWNED = {"use_sim_time"}


def _setup_executables() -> dict:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "EXECUTABLES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no EXECUTABLES dict")


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _callee(call: ast.Call) -> str:
    return getattr(call.func, "id", getattr(call.func, "attr", ""))


def _launch_info(path: Path) -> tuple[dict, list]:
    """Declared arguments (name -> default config file name or None) and the node calls."""
    tree = ast.parse(path.read_text())
    args, nodes = {}, []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if _callee(call) == "DeclareLaunchArgument":
            name = ast.literal_eval(call.args[0])
            default = _kw(call, "default_value")
            strings = [c.value for c in ast.walk(default) if isinstance(c, ast.Constant) and isinstance(c.value, str)] if default else []
            args[name] = next((s for s in strings if s.endswith(".yaml")), None)
        elif _callee(call) in ("Node", "LifecycleNode"):
            nodes.append(call)
    return args, nodes


def _schema_names(executable: str) -> set[str]:
    return set(flatten(NODE_SCHEMAS[executable]())) | ROS_OWNED


def test_there_are_launch_files():
    assert {p.name for p in LAUNCH_FILES} >= {"sim.launch.py", "onboard.launch.py"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_references_exist(path):
    compile(path.read_text(), str(path), "exec")
    exes = _setup_executables()
    args, nodes = _launch_info(path)
    assert nodes, "no Node actions"
    assigned = {t.id: n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(t, ast.Name)}
    used_args = {ast.literal_eval(c.args[0]) for c in ast.walk(ast.parse(path.read_text()))
                 if isinstance(c, ast.Call) and _callee(c) == "LaunchConfiguration"}
    assert used_args <= set(args), f"undeclared launch arguments {used_args - set(args)}"
    assert {"model", "namespace", "use_sim_time"} <= set(args)
    for call in nodes:
        assert ast.literal_eval(_kw(call, "package")) == "lnn_drone"
        exe = ast.literal_eval(_kw(call, "executable"))
        assert exe in exes, f"{exe} is not a console script in setup.py"
        wrapper = ROOT / "resource" / "lib" / exe
        assert wrapper.is_file() and os.access(wrapper, os.X_OK), f"resource/lib/{exe} missing or not executable"
        assert exe in NODE_SCHEMAS
        names = _schema_names(exe)
        params = _kw(call, "parameters")
        if isinstance(params, ast.Name):  # a list bound to a variable in generate_launch_description
            params = assigned[params.id]
        for item in params.elts:
            if isinstance(item, ast.Dict):
                keys = {ast.literal_eval(k) for k in item.keys}
                assert keys <= names, f"{exe}: unknown parameters {keys - names}"
            else:  # LaunchConfiguration("<x>_config") -> its default parameter file
                arg = ast.literal_eval(item.args[0])
                fname = args[arg]
                assert fname, f"launch argument {arg} has no default parameter file"
                f = ROOT / "config" / fname
                assert f.is_file(), f"config/{fname} missing"
                data = yaml.safe_load(f.read_text())
                assert list(data) == ["/**"] and "ros__parameters" in data["/**"]
                flat = set(_flat(data["/**"]["ros__parameters"]))
                assert flat <= names, f"{fname}: parameters unknown to {exe}: {flat - names}"


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


@pytest.mark.parametrize("name", ["sim_node", "policy_node", "fc_bridge_node"])
def test_config_files_are_complete_and_valid(name):
    """Every tunable is in the YAML (with a comment) and the values pass the schema."""
    from lnn_drone.config import from_dict

    text = (ROOT / "config" / f"{name}.yaml").read_text()
    params = yaml.safe_load(text)["/**"]["ros__parameters"]
    from_dict(NODE_SCHEMAS[name], params)
    assert set(_flat(params)) == set(flatten(NODE_SCHEMAS[name]())), "config file and schema differ"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        s = line.strip()
        if s and not s.startswith("#") and not s.endswith(":") and ":" in s and not s.startswith(("/**", "ros__")):
            assert lines[i - 1].strip().startswith("#") or s.startswith(("vehicle", "drag", "enabled")), f"uncommented: {s}"


def test_launch_runs_where_launch_pytest_exists():
    pytest.importorskip("launch_pytest")
    pytest.importorskip("launch_ros")
    import launch  # noqa: F401
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    for path in LAUNCH_FILES:
        desc = PythonLaunchDescriptionSource(str(path)).get_launch_description(launch.LaunchContext())
        assert desc.entities
