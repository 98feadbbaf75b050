"""Parameter schemas of the ROS nodes: one typed dataclass per node, shared by the node
(ROS parameter descriptors and ranges), the YAML files in ``config/`` and ``lnn-drone fly``.

Fields use :func:`lnn_drone.config.param`, so a parameter has one name, unit, range and meaning.
``runtime=True`` marks what ``ros2 param set`` may change while flying; everything else is
read-only after start. rclpy-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import ConfigError, SimConfig, param

FAILSAFE_ACTIONS = ("motors_off", "hover", "descend")


@dataclass
class EpisodeConfig:
    """What the sim node flies: the seeded evaluation protocol's episodes (DESIGN.md §6)."""

    tier: str = param("A30", choices=("A30", "A45", "A90"), doc="initial-state tier of the protocol")
    seed: int = param(0, lo=0, hi=2**31 - 1, doc="protocol seed: same seed, same initial states")
    start_index: int = param(0, lo=0, hi=1_000_000, doc="first episode index")
    count: int = param(1, lo=0, hi=1_000_000, doc="episodes to fly; 0 = repeat until shut down")
    duration_s: float = param(10.0, unit="s", lo=5.01, hi=86400.0, doc="episode length (success = last 5 s within 0.5 m)")
    goal: list = param([0.0, 0.0, 2.0, 0.0], unit="m, m, m, rad", lo=-1000.0, hi=1000.0, doc="target x, y, z (ENU) and yaw")
    latency_ms: float = param(0.0, unit="ms", lo=0.0, hi=200.0, doc="simulated actuation latency")
    task: str = param("hover", choices=("hover", "visual_target"),
                      doc="hover = tier recoveries to goal; visual_target = fly to a visual target (camera on, its own start and target)")
    condition: str = param("nominal", doc="visual_target: evaluation condition (lnn-drone eval --task visual_target --list-conditions)")

    def check(self) -> None:
        if len(self.goal) != 4:
            raise ConfigError(f"episode.goal: expected [x, y, z, yaw], got {self.goal}")


@dataclass
class SimNodeConfig:
    lockstep: bool = param(True, doc="wait for the command of every control tick (deterministic); false = real time")
    lockstep_timeout_s: float = param(30.0, unit="s", lo=0.001, hi=600.0,
                                      doc="wall time to wait for a tick's command before holding the last one (counted); "
                                          "a hang guard: a loaded machine may take seconds")
    lockstep_resend_s: float = param(1.0, unit="s", lo=0.01, hi=600.0,
                                     doc="lockstep: re-send the tick's sensors when no command came within this "
                                         "wall time (best-effort sensor QoS may drop a sample on a loaded machine)")
    min_sensor_subscribers: int = param(1, lo=0, hi=100, doc="start flying once imu/odom have this many subscribers "
                                        "(lnn-drone fly: 2, the policy and the recorder)")
    startup_timeout_s: float = param(60.0, unit="s", lo=0.0, hi=3600.0, doc="wait this long for a command publisher")
    real_time_factor: float = param(1.0, lo=0.01, hi=100.0, doc="real-time mode: sim seconds per wall second")
    results_file: str = param("", doc="write the episodes' results (JSON) here at the end; empty = don't")
    exit_when_done: bool = param(True, doc="exit after the last episode (lnn-drone fly stops the graph then)")
    frame_prefix: str = param("", doc="prefix of the odom/base_link frame ids (several drones side by side)")
    realtime_priority: int = param(0, lo=0, hi=98, doc="SCHED_FIFO priority of the node's threads (onboard: e.g. 80); "
                                   "0 = normal scheduling; needs CAP_SYS_NICE or an rtprio limit, else a warning")
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)
    sim: SimConfig = field(default_factory=SimConfig)


@dataclass
class PolicyNodeConfig:
    model: str = param("", runtime=True, doc="model file (.safetensors); empty = the package's models/hover.safetensors. "
                       "Changing it at run time swaps the model atomically or is refused with the reason")
    controller: str = param("policy", choices=("policy", "expert"),
                            doc="policy = the model file; expert = the classical geometric controller on the privileged odom topic (baseline)")
    vehicle: str = param("crazyflie2", doc="vehicle name or YAML path: hover thrust for the failsafe, constants for the "
                                           "expert, the airframe vehicle matching flies")
    vehicle_matching: bool = param(True, doc="on a vehicle other than the model's training one, make it respond as the trained "
                                   "one (lnn_drone/policy/vehicle_matching.py) where the model allows it; false = fly it raw")
    control_rate_hz: float = param(0.0, unit="Hz", lo=0.0, hi=2000.0,
                                   doc="watchdog / failsafe command rate; 0 = the model's control rate")
    sync: str = param("exact", choices=("exact", "latest"),
                      doc="exact = compute when imu and odom of the same stamp are in (lockstep); latest = on each new trigger sample")
    input_timeout_periods: float = param(1.5, unit="control periods", lo=1.0, hi=1000.0, runtime=True,
                                         doc="imu/odom older than this -> failsafe")
    image_timeout_s: float = param(0.25, unit="s", lo=0.001, hi=60.0, runtime=True, doc="camera image older than this -> failsafe")
    failsafe_action: str = param("motors_off", choices=FAILSAFE_ACTIONS, runtime=True,
                                 doc="motors_off (on the ground) | hover (hover thrust, zero rates) | descend (below hover thrust)")
    descend_thrust_frac: float = param(0.85, unit="x hover thrust", lo=0.0, hi=1.0, runtime=True,
                                       doc="thrust of the descend failsafe as a fraction of hover thrust")
    publish_internals: bool = param(False, runtime=True, doc="publish neuron states on ~/neurons (Float32MultiArray)")
    diagnostics_period_s: float = param(1.0, unit="s", lo=0.05, hi=60.0, doc="period of /diagnostics")
    realtime_priority: int = param(0, lo=0, hi=98, doc="SCHED_FIFO priority of the node's threads (onboard: e.g. 80); "
                                   "0 = normal scheduling; needs CAP_SYS_NICE or an rtprio limit, else a warning")


@dataclass
class FcBridgeNodeConfig:
    backend: str = param("sim", choices=("sim", "betaflight", "mavlink", "crazyflie"),
                         doc="flight-controller backend (lnn_drone.fc); sim = a simulated FC (PyBullet vehicle)")
    device: str = param("", doc="serial device, tcp://host:port or udp://host:port of the FC (hardware backends)")
    telemetry_rate_hz: float = param(250.0, unit="Hz", lo=1.0, hi=8000.0, doc="IMU telemetry publishing rate")
    command_timeout_s: float = param(0.1, unit="s", lo=0.005, hi=10.0, runtime=True,
                                     doc="no command for this long -> the FC's own failsafe (motors off, disarm)")
    auto_arm: bool = param(True, doc="arm on the first valid command (sim backend); hardware needs an explicit arm")
    publish_odom: bool = param(True, doc="publish odom when the backend has an estimate (sim: true state)")
    realtime_priority: int = param(0, lo=0, hi=98, doc="SCHED_FIFO priority of the node's threads (onboard: e.g. 80); "
                                   "0 = normal scheduling; needs CAP_SYS_NICE or an rtprio limit, else a warning")
    sim: SimConfig = field(default_factory=SimConfig)
    initial_position: list = param([0.0, 0.0, 2.0], unit="m", lo=-1000.0, hi=1000.0, doc="sim backend: start position (ENU)")

    def check(self) -> None:
        if len(self.initial_position) != 3:
            raise ConfigError(f"initial_position: expected [x, y, z], got {self.initial_position}")


@dataclass
class HilSimNodeConfig:
    """The physics side of hardware-in-the-loop with a Betaflight SITL (DESIGN.md §8)."""

    sitl_host: str = param("127.0.0.1", doc="host of the Betaflight SITL")
    sitl_state_port: int = param(9003, lo=1, hi=65535, doc="UDP port the SITL reads the physics state from")
    sitl_motor_port: int = param(9002, lo=1, hi=65535, doc="UDP port the SITL sends its motor outputs to (bound here)")
    vehicle: str = param("quad250", doc="shipped vehicle name or path to a vehicle YAML")
    physics_hz: float = param(480.0, unit="Hz", lo=100.0, hi=2000.0, doc="physics rate = state packets to the firmware per sim second")
    odom_rate_hz: float = param(120.0, unit="Hz", lo=1.0, hi=2000.0, doc="odom publishing rate (sim time)")
    real_time_factor: float = param(0.5, lo=0.05, hi=1.0,
                                    doc="sim seconds per wall second; < 1 leaves the firmware its 8 kHz loop on a loaded host")
    sim_clock: bool = param(True, doc="publish /clock (simulated time) and stamp with it (the other nodes then use_sim_time); "
                            "false = wall-clock stamps, no /clock (run at real_time_factor 1)")
    imu_noise: bool = param(True, doc="IMU noise on the sensors the firmware sees")
    arm_timeout_s: float = param(60.0, unit="s", lo=1.0, hi=3600.0,
                                 doc="held on the ground until the firmware spins the motors (armed); give up after this (wall)")
    results_file: str = param("", doc="write the episodes' results (JSON) here at the end; empty = don't")
    exit_when_done: bool = param(True, doc="exit after the last episode")
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)


NODE_SCHEMAS = {"sim_node": SimNodeConfig, "policy_node": PolicyNodeConfig, "policy_lifecycle_node": PolicyNodeConfig,
                "fc_bridge_node": FcBridgeNodeConfig, "hil_sim_node": HilSimNodeConfig}
