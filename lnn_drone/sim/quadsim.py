"""One quadrotor in a PyBullet world: motors, aerodynamics, disturbances and sensors.

The inner loop is written with Python floats, not small numpy arrays: at 240-500 Hz the cost
of numpy's per-call overhead dominates a 4-rotor model, and the simulator must stay within 2x of
a bare PyBullet loop (``bench/sim_speed.py``). The rotor forces are summed into one body force
and one torque (identical physics to four point forces at the rotor hubs, fewer API calls).

The world is created once; :meth:`QuadSim.reset` only sets state, and vehicle changes
(domain randomization) go through ``changeDynamics``, never a reload.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from ._pybullet import pb

from ..config import SimConfig, validate
from ..frames import GRAVITY, YAW_TORQUE_SIGNS
from ..vehicle import VehicleSpec, load_vehicle
from .noise import ImuNoise, NormalStream
from .state import DroneState

_new_tuple = tuple.__new__
_LINK = pb.LINK_FRAME
_ORIGIN = (0.0, 0.0, 0.0)


class ImuSample(NamedTuple):
    """One IMU reading: body rates (rad/s) and specific force (m/s^2), body FLU."""

    stamp: float
    gyro: tuple[float, float, float]
    accel: tuple[float, float, float]


@dataclass
class RotorParams:
    """Per-rotor constants after randomization (thrust and torque spread between rotors)."""

    max_thrust_n: tuple[float, float, float, float]
    torque_to_thrust_m: tuple[float, float, float, float]


class QuadSim:
    """PyBullet quadrotor. ``step(u)`` advances one control period with motor commands u∈[0,1]^4."""

    def __init__(self, config: SimConfig | None = None, vehicle: VehicleSpec | None = None,
                 seed: int | None = None, client: int | None = None):
        self.config = validate(config or SimConfig())
        self.nominal_vehicle = vehicle or load_vehicle(self.config.vehicle)
        self._own_client = client is None
        self.client = pb.connect(pb.DIRECT) if client is None else client
        self._rng = np.random.default_rng(seed)
        self._normals = NormalStream(self._rng)
        self.physics_dt = 1.0 / self.config.physics_hz
        self._inv_dt = self.config.physics_hz
        ratio = self.config.physics_hz / self.config.control_hz
        self._substeps = int(round(ratio)) if abs(ratio - round(ratio)) < 1e-9 else 0
        self._build_world()
        self.set_vehicle(self.nominal_vehicle)
        self.action_latency_s = self.config.action_latency_s
        self._imu_noise_scale = 1.0
        self.constant_push_n = (0.0, 0.0, 0.0)
        self.gust_std_mps = self.config.wind.gust_std_mps
        self.camera = None
        if self.config.camera.enabled:
            from .camera import Camera

            self.camera = Camera(self.config.camera, self.client)
        self.reset(DroneState())

    # ------------------------------------------------------------------ world and vehicle
    def _build_world(self) -> None:
        c = self.client
        pb.resetSimulation(physicsClientId=c)
        pb.setGravity(0, 0, -GRAVITY, physicsClientId=c)
        pb.setTimeStep(self.physics_dt, physicsClientId=c)
        pb.setPhysicsEngineParameter(deterministicOverlappingPairs=1, physicsClientId=c)
        import pybullet_data

        self.plane_id = pb.loadURDF(pybullet_data.getDataPath() + "/plane.urdf", physicsClientId=c)
        half = [s / 2.0 for s in self.nominal_vehicle.body_size_m]
        col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=c)
        self.body_id = pb.createMultiBody(self.nominal_vehicle.mass_kg, col, -1, [0, 0, 1], physicsClientId=c)
        self.body_half_height = half[2]

    def set_vehicle(self, spec: VehicleSpec, kf_scale=(1.0, 1.0, 1.0, 1.0), km_scale=(1.0, 1.0, 1.0, 1.0)) -> None:
        """Fly another set of constants (no URDF reload). Scales spread rotors around nominal."""
        self.vehicle = spec
        pb.changeDynamics(self.body_id, -1, mass=spec.mass_kg, localInertiaDiagonal=list(spec.inertia_kg_m2),
                          linearDamping=0.0, angularDamping=0.0, lateralFriction=0.8, restitution=0.0,
                          physicsClientId=self.client)
        tmax = spec.max_thrust_per_rotor_n
        self.rotors = RotorParams(
            max_thrust_n=tuple(tmax * s for s in kf_scale),
            torque_to_thrust_m=tuple(spec.torque_to_thrust_m * k / s for k, s in zip(km_scale, kf_scale)),
        )
        self._tmax = self.rotors.max_thrust_n
        p = spec.rotor_positions_flu
        self._rx = tuple(float(v) for v in p[:, 0])
        self._ry = tuple(float(v) for v in p[:, 1])
        self._yaw_sign = tuple(float(s) for s in YAW_TORQUE_SIGNS)
        self._max_rpm = spec.max_rpm
        drag = tuple(spec.rotor_drag_n_per_rpm_mps)
        self._drag = drag if self.config.drag and any(drag) else None
        self._prop_r = spec.prop_radius_m
        self._ge_on = self.config.ground_effect
        self._ge_height = 8.0 * spec.prop_radius_m + 0.1  # above this the effect is < 0.2 %
        self._yaw_coeff = tuple(s * k for s, k in zip(self._yaw_sign, self.rotors.torque_to_thrust_m))
        self._wind = tuple(self.config.wind.constant_mps)
        self.set_motor_time_constants(spec.motor_tau_up_s, spec.motor_tau_down_s)

    def set_motor_time_constants(self, tau_up_s: float, tau_down_s: float) -> None:
        """First-order lag of rotor speed, exact discretization at the physics step."""
        self.motor_tau_up_s, self.motor_tau_down_s = tau_up_s, tau_down_s
        self._alpha_up = 1.0 - math.exp(-self.physics_dt / tau_up_s)
        self._alpha_down = 1.0 - math.exp(-self.physics_dt / tau_down_s)

    # ------------------------------------------------------------------ reset
    def reset(self, state: DroneState, motor_speed: float | tuple | None = None, seed: int | None = None) -> None:
        """Put the drone in ``state``. Rotors spin at hover speed unless ``motor_speed`` says
        otherwise (normalized rotor speed ∈ [0,1], scalar or per rotor)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._normals = NormalStream(self._rng)
        if not state.is_finite():
            raise ValueError(f"reset state is not finite: {state}")
        c, b = self.client, self.body_id
        q = state.quaternion / np.linalg.norm(state.quaternion)
        pb.resetBasePositionAndOrientation(b, state.position.tolist(), q.tolist(), physicsClientId=c)
        r = np.array(pb.getMatrixFromQuaternion(q.tolist())).reshape(3, 3)
        w_world = r @ state.angular_velocity
        pb.resetBaseVelocity(b, state.velocity.tolist(), w_world.tolist(), physicsClientId=c)
        if motor_speed is None:
            motor_speed = math.sqrt(min(1.0, self.vehicle.hover_command))
        speeds = [float(motor_speed)] * 4 if np.isscalar(motor_speed) else [float(s) for s in motor_speed]
        self._w = speeds
        self._u = [s * s for s in speeds]
        self._cmd_queue: deque = deque()
        self.t = 0.0
        self._step_index = 0
        self._control_index = 0
        self._pos = tuple(float(v) for v in state.position)
        self._quat = tuple(float(v) for v in q)
        self._vel = tuple(float(v) for v in state.velocity)
        self._wvel = tuple(float(v) for v in w_world)
        self._rot = pb.getMatrixFromQuaternion(self._quat)
        self._thrusts = [0.0] * 4
        self._body_rates_step = -1
        self._push_force = (0.0, 0.0, 0.0)
        self._push_until = -1.0
        self._gust = [0.0, 0.0, 0.0]
        # IMU
        icfg = self.config.imu
        # the IMU cannot sample faster than the physics it observes
        self._imu_period = max(1.0 / icfg.rate_hz, self.physics_dt)
        self._imu_latency = icfg.latency_s
        self._next_imu_t = 0.0
        initial_bias = ([icfg.initial_gyro_bias_std * n for n in self._normals.take(3)]
                        + [icfg.initial_accel_bias_std * n for n in self._normals.take(3)])
        self._imu_constants(initial_bias)
        g = GRAVITY
        f0 = (self._rot[6] * g, self._rot[7] * g, self._rot[8] * g)  # at-rest specific force in body
        self._imu_queue: deque[ImuSample] = deque()
        self._imu_latest = ImuSample(0.0, tuple(float(v) for v in state.angular_velocity), f0)
        self._sample_imu_now(accel_world=(0.0, 0.0, 0.0))
        if self.camera is not None:
            # its own stream, so that image noise leaves the IMU noise of a seed unchanged
            self.camera.reset(np.random.default_rng([seed, 7]) if seed is not None else None)
            self.camera.update(self.t, self._pos, self._rot, force=True)

    @property
    def imu_noise_scale(self) -> float:
        """Multiplier on the configured IMU noise densities (domain randomization)."""
        return self._imu_noise_scale

    @imu_noise_scale.setter
    def imu_noise_scale(self, k: float) -> None:
        self._imu_noise_scale = float(k)
        if hasattr(self, "_imu_noise"):
            self._imu_constants(self._imu_noise.bias)

    # ------------------------------------------------------------------ disturbances
    def set_wind(self, constant_mps, gust_std_mps: float | None = None) -> None:
        """Steady wind (world ENU, m/s) and optionally the gust strength."""
        self._wind = tuple(float(v) for v in constant_mps)
        if gust_std_mps is not None:
            self.gust_std_mps = float(gust_std_mps)

    def push(self, force_world_n, duration_s: float) -> None:
        """An impulse-like push: a world-frame force held for ``duration_s`` from now."""
        self._push_force = tuple(float(f) for f in force_world_n)
        self._push_until = self.t + duration_s

    def set_constant_push(self, force_world_n) -> None:
        """A steady external force (e.g. a tether or a steady side wind), world frame."""
        self.constant_push_n = tuple(float(f) for f in force_world_n)

    # ------------------------------------------------------------------ stepping
    def command(self, u) -> None:
        """Queue motor commands; they reach the motors after the actuation latency.
        Non-finite values are treated as 0 (motor off) — the sim never propagates NaN."""
        if len(u) != 4:
            raise ValueError(f"motor command needs 4 values (FR, BR, BL, FL), got {len(u)}")
        clean = [0.0 if not (v >= 0.0) else (1.0 if v > 1.0 else float(v)) for v in u]
        if self.action_latency_s <= 0.0 and not self._cmd_queue:
            self._u = clean  # no latency: the motors follow at once
        else:
            self._cmd_queue.append((self.t + self.action_latency_s - 1e-9, clean))

    def step(self, u=None) -> None:
        """Advance to the next control tick (one or more physics steps)."""
        if u is not None:
            self.command(u)
        self._control_index += 1
        if self._substeps == 1:
            self.step_physics()
        else:
            target = (self._control_index * self._substeps if self._substeps
                      else round(self._control_index * self.config.physics_hz / self.config.control_hz))
            while self._step_index < target:
                self.step_physics()
        if self.camera is not None:
            self.camera.update(self.t, self._pos, self._rot)

    def step_physics(self) -> None:
        """One physics step: motors → forces → PyBullet → state → IMU (hot path: plain floats)."""
        t = self.t
        q = self._cmd_queue
        while q and q[0][0] <= t:
            self._u = q.popleft()[1]
        w, u = self._w, self._u
        a_up, a_dn = self._alpha_up, self._alpha_down
        tmax = self._tmax
        sqrt = math.sqrt
        w0, w1, w2, w3 = w
        c0, c1, c2, c3 = sqrt(u[0]), sqrt(u[1]), sqrt(u[2]), sqrt(u[3])
        w0 += (c0 - w0) * (a_up if c0 > w0 else a_dn)
        w1 += (c1 - w1) * (a_up if c1 > w1 else a_dn)
        w2 += (c2 - w2) * (a_up if c2 > w2 else a_dn)
        w3 += (c3 - w3) * (a_up if c3 > w3 else a_dn)
        self._w = w = [w0, w1, w2, w3]
        th = [tmax[0] * w0 * w0, tmax[1] * w1 * w1, tmax[2] * w2 * w2, tmax[3] * w3 * w3]
        rot = self._rot
        z = self._pos[2]
        rx, ry = self._rx, self._ry
        if self._ge_on and z < self._ge_height:
            # Cheeseman-Bennett, rotor height from the body's tilt, capped near contact
            r = self._prop_r
            for i in range(4):
                zi = max(z + rot[6] * rx[i] + rot[7] * ry[i], 0.5 * r)
                th[i] /= 1.0 - (r / (4.0 * zi)) ** 2
        self._thrusts = th
        t0, t1, t2, t3 = th
        kq = self._yaw_coeff
        tx = ry[0] * t0 + ry[1] * t1 + ry[2] * t2 + ry[3] * t3
        ty = -(rx[0] * t0 + rx[1] * t1 + rx[2] * t2 + rx[3] * t3)
        tz = kq[0] * t0 + kq[1] * t1 + kq[2] * t2 + kq[3] * t3
        # body force: thrust along body z, rotor drag against the air-relative body velocity
        vx, vy, vz = self._vel
        fbx = fby = 0.0
        fbz = t0 + t1 + t2 + t3
        d = self._drag
        if d is not None:
            wind = self._wind
            gust = self._gust
            ax_, ay_, az_ = vx - wind[0] - gust[0], vy - wind[1] - gust[1], vz - wind[2] - gust[2]
            rpm_sum = self._max_rpm * (w0 + w1 + w2 + w3)
            fbx = -d[0] * rpm_sum * (rot[0] * ax_ + rot[3] * ay_ + rot[6] * az_)
            fby = -d[1] * rpm_sum * (rot[1] * ax_ + rot[4] * ay_ + rot[7] * az_)
            fbz -= d[2] * rpm_sum * (rot[2] * ax_ + rot[5] * ay_ + rot[8] * az_)
        # external pushes are world-frame; rotate them into the body only when present
        ex, ey, ez = self.constant_push_n
        if t < self._push_until:
            pf = self._push_force
            ex, ey, ez = ex + pf[0], ey + pf[1], ez + pf[2]
        if ex or ey or ez:
            fbx += rot[0] * ex + rot[3] * ey + rot[6] * ez
            fby += rot[1] * ex + rot[4] * ey + rot[7] * ez
            fbz += rot[2] * ex + rot[5] * ey + rot[8] * ez
        c, b = self.client, self.body_id
        # LINK_FRAME on the base: force at the centre of mass and torque, both in body axes
        # (checked in test_sim_physics: a body-x torque on a body pitched 90° spins about world -z)
        pb.applyExternalForce(b, -1, (fbx, fby, fbz), _ORIGIN, _LINK, physicsClientId=c)
        pb.applyExternalTorque(b, -1, (tx, ty, tz), _LINK, physicsClientId=c)
        pb.stepSimulation(physicsClientId=c)
        self._pos, self._quat = pb.getBasePositionAndOrientation(b, physicsClientId=c)
        vel, self._wvel = pb.getBaseVelocity(b, physicsClientId=c)
        self._vel = vel
        self._rot = pb.getMatrixFromQuaternion(self._quat)
        self._step_index += 1
        self.t = self._step_index * self.physics_dt
        if self.gust_std_mps > 0.0:
            self._update_gust()
        if self.t >= self._next_imu_t:
            inv_dt = self._inv_dt
            self._sample_imu_now(((vel[0] - vx) * inv_dt, (vel[1] - vy) * inv_dt, (vel[2] - vz) * inv_dt))

    def _update_gust(self) -> None:
        """Ornstein-Uhlenbeck gust, exact discretization at the physics step."""
        a = math.exp(-self.physics_dt / self.config.wind.gust_tau_s)
        s = self.gust_std_mps * math.sqrt(1.0 - a * a)
        n = self._normals.take(3)
        g = self._gust
        self._gust = [a * g[0] + s * n[0], a * g[1] + s * n[1], a * g[2] + s * n[2]]

    # ------------------------------------------------------------------ sensors
    def _imu_constants(self, bias) -> None:
        """(Re)build the IMU error stream: discrete white-noise std = density / sqrt(period),
        bias random-walk step = density · sqrt(period); noise scaled by ``imu_noise_scale``."""
        cfg = self.config.imu
        p = self._imu_period
        k = self._imu_noise_scale
        self._imu_noise = ImuNoise(self._rng, (cfg.gyro_noise_density * k / math.sqrt(p), cfg.accel_noise_density * k / math.sqrt(p)),
                                   (cfg.gyro_bias_random_walk * math.sqrt(p), cfg.accel_bias_random_walk * math.sqrt(p)), bias)

    @property
    def imu_bias(self) -> np.ndarray:
        """Current IMU bias (gyro rad/s xyz, accel m/s^2 xyz) — privileged, for tests and logs."""
        return self._imu_noise.bias

    @property
    def body_rates(self) -> tuple[float, float, float]:
        """True angular velocity in the body frame (FLU), rad/s."""
        if self._body_rates_step == self._step_index:
            return self._body_rates
        rot, wv = self._rot, self._wvel
        return (rot[0] * wv[0] + rot[3] * wv[1] + rot[6] * wv[2], rot[1] * wv[0] + rot[4] * wv[1] + rot[7] * wv[2],
                rot[2] * wv[0] + rot[5] * wv[1] + rot[8] * wv[2])

    def _sample_imu_now(self, accel_world) -> None:
        rot = self._rot
        ax, ay, az = accel_world[0], accel_world[1], accel_world[2] + GRAVITY
        e = self._imu_noise.next()
        wv = self._wvel
        bx = rot[0] * wv[0] + rot[3] * wv[1] + rot[6] * wv[2]
        by = rot[1] * wv[0] + rot[4] * wv[1] + rot[7] * wv[2]
        bz = rot[2] * wv[0] + rot[5] * wv[1] + rot[8] * wv[2]
        self._body_rates = (bx, by, bz)  # true rates of this step, reused by body_rates
        self._body_rates_step = self._step_index
        gyro = (bx + e[0], by + e[1], bz + e[2])
        accel = (rot[0] * ax + rot[3] * ay + rot[6] * az + e[3],
                 rot[1] * ax + rot[4] * ay + rot[7] * az + e[4],
                 rot[2] * ax + rot[5] * ay + rot[8] * az + e[5])
        t = self.t
        sample = _new_tuple(ImuSample, (t, gyro, accel))  # NamedTuple without its Python __new__
        self._next_imu_t = t + self._imu_period - 1e-9
        lat = self._imu_latency
        if lat <= 0.0:
            self._imu_latest = sample
            return
        iq = self._imu_queue
        iq.append(sample)
        while iq and iq[0].stamp <= t - lat + 1e-9:
            self._imu_latest = iq.popleft()

    @property
    def imu(self) -> ImuSample:
        """The newest IMU sample available now (after the configured latency)."""
        return self._imu_latest

    @property
    def state(self) -> DroneState:
        """True state (privileged), body rates in FLU."""
        rot = self._rot
        wv = self._wvel
        body_w = [rot[0] * wv[0] + rot[3] * wv[1] + rot[6] * wv[2],
                  rot[1] * wv[0] + rot[4] * wv[1] + rot[7] * wv[2],
                  rot[2] * wv[0] + rot[5] * wv[1] + rot[8] * wv[2]]
        return DroneState(np.array(self._pos), np.array(self._quat), np.array(self._vel), np.array(body_w))

    @property
    def position(self) -> tuple[float, float, float]:
        return self._pos

    @property
    def rotation_matrix(self) -> tuple:
        """Row-major 3x3 body→world rotation as a 9-tuple."""
        return self._rot

    @property
    def motor_speeds(self) -> list[float]:
        """Normalized rotor speeds ω/ω_max ∈ [0, 1], contract order."""
        return list(self._w)

    @property
    def motor_thrusts_n(self) -> list[float]:
        return list(self._thrusts)

    @property
    def applied_command(self) -> list[float]:
        """The command the motors are following now (after latency)."""
        return list(self._u)

    def odometry(self) -> DroneState:
        """Odometry as an estimator would give it: the true state plus configured noise."""
        s = self.state
        cfg = self.config.odom
        if cfg.position_noise_std or cfg.velocity_noise_std or cfg.attitude_noise_std:
            n = self._normals.take(9)
            s.position = s.position + cfg.position_noise_std * np.array(n[0:3])
            s.velocity = s.velocity + cfg.velocity_noise_std * np.array(n[3:6])
            if cfg.attitude_noise_std:
                from ..frames import quat_to_rotmat, rotmat_to_quat, rotvec_to_rotmat

                dth = cfg.attitude_noise_std * np.array(n[6:9])
                s.quaternion = rotmat_to_quat(quat_to_rotmat(s.quaternion) @ rotvec_to_rotmat(dth))
        return s

    def close(self) -> None:
        if self._own_client and self.client is not None:
            try:
                pb.disconnect(physicsClientId=self.client)
            except pb.error:
                pass
            self.client = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass
