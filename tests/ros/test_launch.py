"""The launch file action_node.launch.py, without ``launch`` (launch and launch_ros are not on
PyPI, so the launch glue itself never runs here).

What it does with its arguments is ``masksem_ros.launch_params.node_launch``: its namespace and
parameters for ``models:=...``, ``model_path:=...`` (over the shipped YAML file or a user's)
and ``namespace:=...`` start the real action node (real rclpy, its own random ROS_DOMAIN_ID,
the command line launch_ros's Node builds from them), and the node serves exactly those models
with the YAML file's other settings. The launch file itself is read with ``ast``: every argument
the function takes is declared and passed under its own name, the Node gets what the function
returns and is setup.py's console script, and the default parameters file is installed, holds
in any namespace and names only parameters the node declares.
"""

from __future__ import annotations

import ast
import inspect
import os
import random
import re
import runpy
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import setuptools
import yaml
from masksem_ros.launch_params import LaunchArgumentError, NodeLaunch, node_launch

from skeleton.card import load_card
from tests.ros.node_runs import PARAMS_KEY, ROS_PACKAGE

LAUNCH_FILE = ROS_PACKAGE / "launch" / "action_node.launch.py"
PARAMS_FILE = ROS_PACKAGE / "config" / "action_node.yaml"
MODELS = Path(__file__).resolve().parents[2] / "models"
INTERACTION, GESTURE = MODELS / "interaction.onnx", MODELS / "default.onnx"
#: The node's last start-up line: it is up, every model loaded.
READY = re.compile(r"reading (\S+) \((\w+)\) from (\S+); action events on")


# -- node_launch --------------------------------------------------------------------------------
def launch_of(**arguments: str) -> NodeLaunch:
    """node_launch with the launch file's defaults (no $MASKSEM_MODEL) for the rest."""
    defaults = {"params_file": str(PARAMS_FILE), "model_path": "", "models": "", "namespace": ""}
    return node_launch(**{**defaults, **arguments})


def test_models_replace_model_path_and_clear_it() -> None:
    launch = launch_of(models=f" {INTERACTION}, {GESTURE},", model_path="/from/env.onnx")
    assert launch.parameters == [
        str(PARAMS_FILE),
        {"models": [str(INTERACTION), str(GESTURE)], "model_path": ""},
    ]


def test_model_path_clears_the_yaml_files_models() -> None:
    launch = launch_of(model_path=str(GESTURE), namespace="robot1")
    assert launch.parameters == [str(PARAMS_FILE), {"model_path": str(GESTURE), "models": [""]}]
    assert launch.namespace == "robot1"


def test_without_model_arguments_the_yaml_file_holds() -> None:
    assert launch_of().parameters == [str(PARAMS_FILE)]


def test_a_missing_params_file_is_an_error_naming_the_argument(tmp_path: Path) -> None:
    with pytest.raises(LaunchArgumentError, match="launch argument params_file: no such file"):
        launch_of(params_file=str(tmp_path / "action_node.yaml"), model_path=str(GESTURE))


# -- the real node, started as launch_ros starts it ---------------------------------------------
def launch_ros_command(launch: NodeLaunch, folder: Path) -> list[str]:
    """The node's ROS arguments as launch_ros's Node action builds them (launch_ros
    actions/node.py): ``-r __node:=`` and ``-r __ns:=``, then ``--params-file`` for each entry
    of ``parameters`` in order, a dict written as a YAML file under the node's full name with
    its lists as tuples (launch_ros's evaluate_parameters makes them tuples, yaml.dump
    writes them so)."""
    name = constant(keyword(launch_file_node(), "name"))
    namespace = launch.namespace.rstrip("/") or "/"
    namespace = namespace if namespace.startswith("/") else f"/{namespace}"
    full_name = f"{namespace.rstrip('/')}/{name}"
    args = ["--ros-args", "-r", f"__node:={name}", "-r", f"__ns:={namespace}"]
    for number, entry in enumerate(launch.parameters):
        if isinstance(entry, dict):
            values = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
            path = folder / f"launch_params_{number}.yaml"
            path.write_text(
                yaml.dump({full_name: {"ros__parameters": values}}, default_flow_style=False)
            )
            entry = str(path)
        args += ["--params-file", str(Path(entry).resolve())]
    return args


def start_node(ros_python: Path, launch: NodeLaunch, folder: Path) -> str:
    """Run the action node with ``launch`` until it is up (or has stopped); its log."""
    folder.mkdir()
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(random.randint(1, 100)),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        RCUTILS_COLORIZED_OUTPUT="0",
        PYTHONUNBUFFERED="1",
    )
    log = folder / "node.log"
    args = launch_ros_command(launch, folder)
    command = [str(ros_python), "-m", "masksem_ros.action_node", *args]
    with open(log, "wb") as out:
        node = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while node.poll() is None and time.monotonic() < deadline:
            if READY.search(log.read_text(errors="replace")):
                break
            time.sleep(0.2)
    finally:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    return log.read_text(errors="replace")


def served_models(log: str) -> list[tuple[str, str]]:
    """(name, card name@version) of every model the node's start-up log says it loaded."""
    return re.findall(r"\bmodel (\S+): (\S+) \(", log)


def version_of(model: Path) -> str:
    card = load_card(model)
    return f"{card.name}@{card.version}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arguments", "own_yaml", "served", "topic"),
    [
        ({"models": f"{INTERACTION},{GESTURE}"}, {}, ["interaction", "default"],
         "/body_tracking_data"),
        ({"model_path": str(GESTURE)}, {}, ["default"], "/body_tracking_data"),
        # A user's YAML file naming models (or model_path): the command line's model_path
        # (or models) runs alone.
        ({"model_path": str(GESTURE)}, {"models": [str(INTERACTION)]}, ["default"],
         "/body_tracking_data"),
        ({"models": str(GESTURE)}, {"model_path": str(INTERACTION)}, ["default"],
         "/body_tracking_data"),
        ({"models": str(GESTURE), "namespace": "robot1"}, {}, ["default"],
         "/robot1/body_tracking_data"),
    ],
    ids=["models", "model_path", "model_path-over-yaml-models", "models-over-yaml-model_path",
         "namespace"],
)  # fmt: skip
def test_the_node_serves_exactly_the_models_launched(
    ros_python: Path,
    tmp_path: Path,
    arguments: dict[str, str],
    own_yaml: dict[str, Any],
    served: list[str],
    topic: str,
) -> None:
    params_file = PARAMS_FILE
    if own_yaml:  # the shipped file with these values
        shipped = yaml.safe_load(PARAMS_FILE.read_text())
        shipped[PARAMS_KEY]["ros__parameters"].update(own_yaml)
        params_file = tmp_path / "my_params.yaml"
        params_file.write_text(yaml.safe_dump(shipped))
    launch = launch_of(params_file=str(params_file), **arguments)
    log = start_node(ros_python, launch, tmp_path / "node")
    ready = READY.search(log)
    assert ready, f"the node never came up:\n{log}"
    assert "Traceback" not in log and "unknown parameter" not in log, log
    models = {"interaction": INTERACTION, "default": GESTURE}
    assert served_models(log) == [(name, version_of(models[name])) for name in served]
    # The shipped YAML file's input settings reached the node too, in its namespace.
    assert ready.groups() == ("marker_array", "k4a32", topic)


# -- the launch file, read with ast -------------------------------------------------------------
def call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    return None


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and call_name(n) == name]


def keyword(call: ast.Call, name: str) -> ast.expr:
    (value,) = [k.value for k in call.keywords if k.arg == name]
    return value


def constant(node: ast.expr) -> Any:
    assert isinstance(node, ast.Constant), ast.unparse(node)
    return node.value


def launch_argument_read(node: ast.expr) -> str | None:
    """``x`` for ``LaunchConfiguration("x").perform(context)``, else None."""
    if call_name(node) == "perform":
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        inner = node.func.value
        if call_name(inner) == "LaunchConfiguration":
            assert isinstance(inner, ast.Call)
            return str(constant(inner.args[0]))
    return None


@pytest.fixture(scope="module")
def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


@pytest.fixture(scope="module")
def declared(launch_tree: ast.Module) -> dict[str, ast.Call]:
    """The launch file's DeclareLaunchArgument calls, by argument name."""
    return {constant(c.args[0]): c for c in calls(launch_tree, "DeclareLaunchArgument")}


def launch_file_node() -> ast.Call:
    """The launch file's Node(...)."""
    (node,) = calls(ast.parse(LAUNCH_FILE.read_text()), "Node")
    return node


@pytest.fixture(scope="module")
def node_call() -> ast.Call:
    return launch_file_node()


@pytest.fixture(scope="module")
def setup_kwargs(monkeypatch_module: pytest.MonkeyPatch) -> dict[str, Any]:
    """What setup.py hands setuptools.setup, run in the package's folder as colcon runs it."""
    seen: dict[str, Any] = {}
    monkeypatch_module.setattr(setuptools, "setup", lambda **kwargs: seen.update(kwargs))
    monkeypatch_module.chdir(ROS_PACKAGE)
    runpy.run_path(str(ROS_PACKAGE / "setup.py"))
    return seen


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def node_parameters() -> set[str]:
    """The parameters the node declares: the fields of settings.NodeSettings (settings.py
    imports rclpy, so it is read, not imported)."""
    tree = ast.parse((ROS_PACKAGE / "masksem_ros" / "settings.py").read_text())
    (settings,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "NodeSettings"]
    return {
        n.target.id
        for n in settings.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
        and n.target.id != "model_config"
    }  # fmt: skip


def test_every_argument_node_launch_takes_is_declared_and_passed_under_its_name(
    launch_tree: ast.Module, declared: dict[str, ast.Call]
) -> None:
    (call,) = calls(launch_tree, "node_launch")
    passed = {k.arg: launch_argument_read(k.value) for k in call.keywords}
    # node_launch takes keywords only: the launch file passes each, read from the launch
    # argument of that name, and every one of them is declared.
    assert set(passed) == set(inspect.signature(node_launch).parameters)
    for name, read in passed.items():
        assert read == name, f"node_launch's {name} is given launch argument {read}"
        assert name in declared, f"launch argument {name} is read but never declared"


def test_the_node_gets_what_node_launch_returns(
    launch_tree: ast.Module, node_call: ast.Call
) -> None:
    (assign,) = [
        n for n in ast.walk(launch_tree)
        if isinstance(n, ast.Assign) and call_name(n.value) == "node_launch"
    ]  # fmt: skip
    (target,) = assign.targets
    assert isinstance(target, ast.Name)
    for field in ("namespace", "parameters"):
        value = keyword(node_call, field)
        assert ast.unparse(value) == f"{target.id}.{field}", f"Node {field}= is not node_launch's"


def test_the_node_is_setup_pys_console_script(
    node_call: ast.Call, setup_kwargs: dict[str, Any]
) -> None:
    package, executable = (
        constant(keyword(node_call, "package")),
        constant(keyword(node_call, "executable")),
    )
    assert package == setup_kwargs["name"]
    scripts = dict(
        (part.strip() for part in entry.split("=", 1))
        for entry in setup_kwargs["entry_points"]["console_scripts"]
    )
    assert executable in scripts, f"setup.py has no console script {executable}"
    module, function = scripts[executable].split(":")
    assert module == "masksem_ros.action_node" and function == "main"


def division_chain(node: ast.expr) -> list[ast.expr]:
    """``[a, b, c]`` for ``a / b / c``."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return division_chain(node.left) + division_chain(node.right)
    return [node]


def test_the_default_params_file_is_installed_and_names_only_node_parameters(
    launch_tree: ast.Module,
    declared: dict[str, ast.Call],
    node_call: ast.Call,
    setup_kwargs: dict[str, Any],
) -> None:
    package = constant(keyword(node_call, "package"))
    # str(share / "config" / "action_node.yaml"), share being the package's share folder
    default = keyword(declared["params_file"], "default_value")
    assert isinstance(default, ast.Call) and call_name(default) == "str", ast.unparse(default)
    share, *parts = division_chain(default.args[0])
    assert isinstance(share, ast.Name), ast.unparse(default)
    (assign,) = [
        n for n in ast.walk(launch_tree)
        if isinstance(n, ast.Assign) and [ast.unparse(t) for t in n.targets] == [share.id]
    ]  # fmt: skip
    assert ast.unparse(assign.value) == f"Path(get_package_share_directory({package!r}))"
    relative = Path(*(constant(part) for part in parts))
    assert (ROS_PACKAGE / relative).is_file(), f"{relative} is not in the package"
    installed = {
        str(Path(folder) / Path(file).name)
        for folder, files in setup_kwargs["data_files"]
        for file in files
        if Path(file) == relative
    }
    assert installed == {f"share/{package}/{relative}"}, "setup.py does not install it there"
    params = yaml.safe_load((ROS_PACKAGE / relative).read_text())
    # Keyed by the node's name, the file would hold in the root namespace only.
    assert list(params) == [PARAMS_KEY], "the parameters must hold in any namespace:="
    unknown = set(params[PARAMS_KEY]["ros__parameters"]) - node_parameters()
    assert not unknown, f"{relative} names parameters the node does not declare: {unknown}"


def test_node_launch_sets_only_node_parameters() -> None:
    for launch in (launch_of(models=str(GESTURE)), launch_of(model_path=str(GESTURE))):
        overrides = [entry for entry in launch.parameters if isinstance(entry, dict)]
        assert overrides and set().union(*overrides) <= node_parameters()
