"""The ``lnn-drone fly`` runner: start a launch file's node graph as processes (where
``ros2 launch`` is unavailable), record every topic to MCAP in-process and write the report.
Lives in ``ros/`` because it is an rclpy program; ``commands/fly_cmd.py`` only parses arguments."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

REALTIME_INPUT_TIMEOUT_PERIODS = 5.0  # same as launch/onboard.launch.py
DIAG_PERIOD_S = 0.5  # the policy's /diagnostics; one more period is recorded after the flight


def _error(msg: str) -> int:
    print(f"lnn-drone fly: error: {msg}", file=sys.stderr)
    return 2


def fly(args) -> int:
    vehicle = getattr(args, "vehicle", None)
    if args.launch == "hil_betaflight":  # SITL + hil_sim + fc bridge + policy: its own runner
        if vehicle:
            return _error("--vehicle is for --launch sim and onboard; the HIL vehicle is hil_sim_node.yaml's")
        from .fly_hil import fly_hil

        return fly_hil(args)
    from .env import DomainLease, ros_environment
    from .launcher import Graph, NodeSpec, config_dir

    if args.launch == "sim" and args.duration <= 5.0:
        return _error("--duration must exceed the 5 s success window")
    if args.duration <= 0:
        return _error("--duration must be > 0")
    cfg_dir = Path(args.config_dir) if args.config_dir else config_dir()
    files = {n: cfg_dir / f"{n}.yaml" for n in ("sim_node", "policy_node", "fc_bridge_node")}
    for f in files.values():
        if not f.exists():
            return _error(f"parameter file {f} not found")
    model = None
    if args.controller == "policy":
        model = args.model or str(Path(__file__).resolve().parents[2] / "models" / "hover.safetensors")
        if not Path(model).exists():
            return _error(f"model file {model} not found (train one, pass --model, or use --controller expert)")
        model = str(Path(model).resolve())
    out = Path(args.out or f"out/fly-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    mcap_path = Path(args.record).resolve() if args.record else out / "flight.mcap"
    results_file = out / "results.json"
    results_file.unlink(missing_ok=True)  # a reused --out must not report the previous flight
    lease = DomainLease()
    env = ros_environment(domain_id=lease.domain_id)
    os.environ.update(env)  # the in-process recorder joins the same (private) domain
    graph = Graph(env, out / "logs")
    lockstep = args.launch == "sim" and not args.real_time
    policy_params = {"controller": args.controller, "publish_internals": True, "diagnostics_period_s": DIAG_PERIOD_S,
                     "use_sim_time": args.launch == "sim", "sync": "exact" if lockstep else "latest"}
    if model:
        policy_params["model"] = model
    if vehicle:
        from ..vehicle import VehicleFileError, load_vehicle

        try:
            load_vehicle(vehicle)
        except (VehicleFileError, OSError) as exc:
            return _error(f"--vehicle {vehicle!r}: {exc}")
        policy_params["vehicle"] = vehicle  # the policy node's failsafe hover thrust and vehicle matching
    if not lockstep:  # wall-clock transport jitter on a non-real-time OS: allow a few periods
        policy_params["input_timeout_periods"] = REALTIME_INPUT_TIMEOUT_PERIODS
    import yaml

    sim_yaml = yaml.safe_load(files["sim_node"].read_text())["/**"]["ros__parameters"]
    control_hz = float(sim_yaml.get("sim", {}).get("control_hz", 240.0))
    sim_overrides: dict = {}
    if model:
        # fly a model at the control rate it was trained for (the liquid cells take any dt, but
        # the report should show the model as trained); physics stays a multiple of it
        from ..policy.model_file import load_model
        from ..training.evaluation import physics_rate_for

        model_cfg = load_model(model).config
        control_hz = 1.0 / model_cfg.control_period
        physics_hz = float(sim_yaml.get("sim", {}).get("physics_hz", 240.0))
        sim_overrides = {"sim.control_hz": control_hz,
                         "sim.physics_hz": physics_rate_for(control_hz, physics_hz)}
        if model_cfg.image_input is not None:
            # a camera policy flies the visual-target task, its camera as the model was trained
            h, w = model_cfg.image_input.shape[:2]
            sim_overrides.update({"episode.task": "visual_target", "sim.camera.enabled": True,
                                  "sim.camera.width": w, "sim.camera.height": h, "sim.camera.rate_hz": control_hz})
    if vehicle:
        sim_overrides["sim.vehicle"] = vehicle
    policy_params["control_rate_hz"] = control_hz
    specs = [NodeSpec("policy_node", "policy", [str(files["policy_node"])], policy_params, args.namespace)]
    if args.launch == "sim":
        specs.append(NodeSpec("sim_node", "sim", [str(files["sim_node"])], {**sim_overrides,
            "lockstep": lockstep, "results_file": str(results_file), "exit_when_done": True,
            "episode.count": 1, "episode.duration_s": float(args.duration), "episode.tier": args.tier.upper(),
            "episode.seed": args.seed, "min_sensor_subscribers": 2}, args.namespace))  # the policy + the recorder
    else:
        fc_yaml = yaml.safe_load(files["fc_bridge_node"].read_text())["/**"]["ros__parameters"]
        policy_params["control_rate_hz"] = float(fc_yaml.get("sim", {}).get("control_hz", 240.0))
        specs.append(NodeSpec("fc_bridge_node", "fc_bridge", [str(files["fc_bridge_node"])],
                              {"sim.vehicle": vehicle} if vehicle else {}, args.namespace))

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from .recorder import McapRecorder

    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    rec_node = rclpy.create_node("recorder", context=context, namespace=args.namespace or None)
    recorder = McapRecorder(rec_node, mcap_path)
    recorder.subscribe_contract()  # before the nodes start: nothing is lost to discovery
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(rec_node)
    spinner = threading.Thread(target=lambda: _spin(executor, context), daemon=True)
    spinner.start()
    goal_pub = None
    if args.launch == "onboard":
        from ..ros import convert as cv
        from geometry_msgs.msg import PoseStamped

        goal_pub = rec_node.create_publisher(PoseStamped, "goal", cv.GOAL_QOS)
        goal_pub.publish(cv.goal_msg(rec_node.get_clock().now().nanoseconds, sim_yaml.get("episode", {}).get("goal", [0, 0, 2, 0])))
    interrupted = False
    codes: dict = {}
    try:
        graph.start(specs[0])  # the policy first: the recorder must hear its first command
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not graph.failed() and not (
                recorder.matched("policy/neurons") and (recorder.matched("motor_commands") or recorder.matched("ctbr_command"))):
            time.sleep(0.05)
        for s in specs[1:] if not graph.failed() else []:  # a policy that cannot start ends the flight
            graph.start(s)
        if graph.failed():
            pass
        elif args.launch == "sim":
            guard = 120.0 + (60.0 if lockstep else 3.0) * args.duration  # hang guard only
            deadline = time.monotonic() + guard
            while graph.wait("sim", 0.5) is None:
                if graph.failed() or time.monotonic() > deadline:
                    break
            time.sleep(2.5 * DIAG_PERIOD_S)  # the policy's final counters (failsafe events) reach the recording
        else:
            deadline = time.monotonic() + args.duration + 5.0  # a few seconds to start up
            while time.monotonic() < deadline and not graph.failed():
                time.sleep(0.2)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        codes = graph.stop()
        time.sleep(0.3)  # let the last messages arrive
        executor.shutdown(timeout_sec=1.0)
        recorder.close()
        rec_node.destroy_node()
        rclpy.try_shutdown(context=context)
        lease.close()
    results = json.loads(results_file.read_text()) if results_file.exists() else None
    from .report import write_report

    report, metrics = write_report(out, results, mcap_path)
    metrics.update({"report": str(report), "recording": str(mcap_path), "exit_codes": codes})
    ok = not interrupted and all(c in (0, -2) for c in codes.values()) and (results is not None or args.launch == "onboard")
    if not ok:
        for name in codes:
            if codes[name] not in (0, -2):
                print(f"--- {name} (exit {codes[name]}):\n{graph.log_tail(name)}", file=sys.stderr)
    print_outcome(metrics, report, args.json)
    return 0 if ok else 1


def print_outcome(metrics: dict, report: Path, as_json: bool) -> None:
    """The flight's last words on stdout: one JSON object, or the headline and the report path."""
    if as_json:
        print(json.dumps(metrics))
        return
    print(f"success {metrics['success']}  rmse {metrics['rmse_m']}  control rate {metrics['control_rate_hz']} Hz  "
          f"failsafe events {metrics['failsafe_events']}  latency p99 {metrics['latency_ms_p99']} ms")
    print(f"report: {report}")


def _spin(executor, context) -> None:
    try:
        while context.ok():
            executor.spin_once(timeout_sec=0.1)
    except Exception:
        pass
